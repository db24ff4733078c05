// The suite's OpenID Provider: the npm package oidc-provider (a certified OpenID Connect
// implementation) on a free loopback port, with the test users of a JSON file.
//
//   node oidc_provider.mjs <oidc-provider module path> <users.json>
//
// users.json: {"registration_token": "...", "users": {"<login>": {"sub": "...",
// "preferred_username": "...", "email": "...", "name": "...", "groups": [...],
// "password": "..."}}}. People log in on the provider's own login page: the login is the
// key of "users", the password checked against it. Clients are registered by the tests over
// OAuth 2.0 Dynamic Client Registration (RFC 7591) at the discovery document's
// registration_endpoint, with the registration token. Prints one line of JSON,
// {"issuer": "http://127.0.0.1:<port>"}, once it listens.
import fs from 'node:fs';
import http from 'node:http';
import { pathToFileURL } from 'node:url';

const [modulePath, usersPath] = process.argv.slice(2);
const { default: Provider } = await import(pathToFileURL(modulePath).href);
const config = JSON.parse(fs.readFileSync(usersPath, 'utf8'));
const users = config.users;
const bySub = new Map(Object.values(users).map((user) => [user.sub, user]));

const server = http.createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const escape = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const provider = new Provider(issuer, {
  findAccount: async (ctx, sub) => {
    const user = bySub.get(sub);
    if (!user) return undefined;
    return {
      accountId: sub,
      claims: async () => ({
        sub,
        preferred_username: user.preferred_username,
        name: user.name,
        email: user.email,
        email_verified: true,
        groups: user.groups,
      }),
    };
  },
  claims: {
    openid: ['sub'],
    profile: ['preferred_username', 'name'],
    email: ['email', 'email_verified'],
    groups: ['groups'],
  },
  scopes: ['openid', 'offline_access', 'profile', 'email', 'groups'],
  features: {
    devInteractions: { enabled: false }, // the login page below checks passwords
    registration: { enabled: true, initialAccessToken: config.registration_token },
  },
  // The hub is a first-party client: no consent page, the requested scopes are granted.
  loadExistingGrant: async (ctx) => {
    const grantId = ctx.oidc.result?.consent?.grantId
      || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope(ctx.oidc.params.scope);
    await grant.save();
    return grant;
  },
  cookies: { keys: [config.registration_token] },
  ttl: { Session: 3600, Interaction: 600, Grant: 3600 },
});

const page = (uid, message) => `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Sign in</title></head>
<body><h1>Sign in to the test provider</h1>
${message ? `<p class="error">${escape(message)}</p>` : ''}
<form method="post" action="/interaction/${escape(uid)}/login" autocomplete="off">
<label>Login <input type="text" name="login" autofocus required></label>
<label>Password <input type="password" name="password" required></label>
<button type="submit">Sign in</button>
</form></body></html>`;

const readForm = (req) => new Promise((resolve, reject) => {
  let body = '';
  req.on('data', (chunk) => { body += chunk; });
  req.on('end', () => resolve(new URLSearchParams(body)));
  req.on('error', reject);
});

// The interaction (login) pages; everything else is oidc-provider's.
const providerCallback = provider.callback();
server.on('request', async (req, res) => {
  const match = /^\/interaction\/([^/?]+)(\/login)?(\?.*)?$/.exec(req.url);
  if (!match) {
    providerCallback(req, res);
    return;
  }
  try {
    const details = await provider.interactionDetails(req, res);
    if (details.uid !== match[1]) throw new Error('interaction mismatch');
    if (!match[2] && req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(page(details.uid, ''));
      return;
    }
    if (match[2] && req.method === 'POST') {
      const form = await readForm(req);
      const user = users[form.get('login')];
      if (!user || user.password !== form.get('password')) {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
        res.end(page(details.uid, 'Wrong login or password.'));
        return;
      }
      await provider.interactionFinished(req, res, { login: { accountId: user.sub } },
        { mergeWithLastSubmission: false });
      return;
    }
    res.writeHead(405);
    res.end();
  } catch (err) {
    res.writeHead(400, { 'content-type': 'text/plain' });
    res.end(`interaction failed: ${err.message}`);
  }
});

process.on('SIGTERM', () => server.close(() => process.exit(0)));
console.log(JSON.stringify({ issuer }));
