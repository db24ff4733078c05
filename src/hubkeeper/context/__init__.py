"""What every verb starts from: the hub opened once (`Hub.open`) and the values derived from it."""
