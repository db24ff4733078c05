#!/bin/sh
#SBATCH --job-name=hubkeeper-course-ann
#SBATCH --output=/home/ann/.hubkeeper-slurm.log
#SBATCH --open-mode=truncate
#SBATCH --chdir=/home/ann/python
#SBATCH --export=HOME,JUPYTERHUB_API_TOKEN,PATH
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --partition=gpu
#SBATCH --time=0-08:00:00
#SBATCH --mem=2048M
#SBATCH --cpus-per-task=2
#SBATCH --gres=gpu:1
#SBATCH --account=physics

exec /var/lib/hubkeeper/course/envs/python/abc/bin/python -P /opt/hubkeeper/hub/slurm_server.py '--SingleUserNotebookApp.x=it'"'"'s'
