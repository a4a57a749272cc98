// The user side of supabase-js against gatehouse: every call a Supabase app makes, and
// the error paths apps branch on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AuthApiError, AuthWeakPasswordError } from '@supabase/supabase-js';
import { client, email, PASSWORD, signedUp, sleep, graceMs, reauthWindowMs, url, anonKey } from './helpers.mjs';

test('signUp confirms at once, returns a session, and puts data in user_metadata', async () => {
  const { session, user } = await signedUp({ name: 'Ada', plan: 'pro' });
  assert.equal(session.token_type, 'bearer');
  assert.ok(session.access_token && session.refresh_token && session.expires_in > 0 && session.expires_at > 0);
  assert.equal(user.aud, 'authenticated');
  assert.equal(user.role, 'authenticated');
  assert.equal(user.user_metadata.name, 'Ada');
  assert.equal(user.user_metadata.plan, 'pro');
  assert.equal(user.app_metadata.provider, 'email');
  assert.equal(user.app_metadata.role, 'user', 'the RBAC role is app_metadata.role');
  assert.ok(user.email_confirmed_at, 'auto-confirmed');
  assert.equal(user.identities.length, 1, 'a real sign-up has an identity');
});

test('signInWithPassword, getUser, updateUser, refreshSession and signOut', async () => {
  const { email: address } = await signedUp();
  const supabase = client();
  const { data: signIn, error: signInError } = await supabase.auth.signInWithPassword({ email: address.toUpperCase(), password: PASSWORD });
  assert.equal(signInError, null);
  assert.equal(signIn.user.email, address);
  assert.ok(signIn.session.access_token);

  const { data: got, error: getError } = await supabase.auth.getUser();
  assert.equal(getError, null);
  assert.equal(got.user.id, signIn.user.id);

  const { data: updated, error: updateError } = await supabase.auth.updateUser({ data: { theme: 'dark' } });
  assert.equal(updateError, null);
  assert.equal(updated.user.user_metadata.theme, 'dark');
  const { data: merged } = await supabase.auth.updateUser({ data: { lang: 'en', theme: null } });
  assert.equal(merged.user.user_metadata.lang, 'en');
  assert.equal(merged.user.user_metadata.theme, undefined, 'a null value removes the key');

  const before = (await supabase.auth.getSession()).data.session;
  const { data: refreshed, error: refreshError } = await supabase.auth.refreshSession();
  assert.equal(refreshError, null);
  assert.notEqual(refreshed.session.refresh_token, before.refresh_token, 'the refresh token rotates');
  assert.notEqual(refreshed.session.access_token, before.access_token);

  const newEmail = email('moved');
  const { data: moved, error: moveError } = await supabase.auth.updateUser({ email: newEmail });
  assert.equal(moveError, null);
  assert.equal(moved.user.email, newEmail);

  const { error: outError } = await supabase.auth.signOut();
  assert.equal(outError, null);
  assert.equal((await supabase.auth.getSession()).data.session, null);
  const again = client();
  const { error: oldEmail } = await again.auth.signInWithPassword({ email: address, password: PASSWORD });
  assert.ok(oldEmail, 'the old email no longer signs in');
  const { error: newOk } = await again.auth.signInWithPassword({ email: newEmail, password: PASSWORD });
  assert.equal(newOk, null);
});

test('a wrong password and an unknown user are both invalid_credentials', async () => {
  const { email: address } = await signedUp();
  for (const attempt of [{ email: address, password: 'quartz-Lantern-48' }, { email: email('nobody'), password: PASSWORD }]) {
    const { data, error } = await client().auth.signInWithPassword(attempt);
    assert.ok(error instanceof AuthApiError, String(error));
    assert.equal(error.status, 400);
    assert.equal(error.code, 'invalid_credentials');
    assert.equal(data.session, null);
  }
});

test('signing up twice is user_already_exists', async () => {
  const { email: address } = await signedUp();
  const { error } = await client().auth.signUp({ email: address, password: PASSWORD });
  assert.ok(error instanceof AuthApiError);
  assert.equal(error.status, 422);
  assert.equal(error.code, 'user_already_exists');
});

test('a weak password is an AuthWeakPasswordError with reasons', async () => {
  const { error } = await client().auth.signUp({ email: email(), password: 'password' });
  assert.ok(error instanceof AuthWeakPasswordError, String(error));
  assert.equal(error.status, 422);
  assert.ok(error.reasons.includes('pwned'), JSON.stringify(error.reasons));
  assert.ok(error.reasons.includes('characters'), JSON.stringify(error.reasons));
  const { supabase } = await signedUp();
  const { error: updateError } = await supabase.auth.updateUser({ password: 'short' });
  assert.ok(updateError instanceof AuthWeakPasswordError);
  assert.ok(updateError.reasons.includes('length'));
});

test('changing the password ends the other sessions', async () => {
  const { supabase, email: address } = await signedUp();
  const other = client();
  await other.auth.signInWithPassword({ email: address, password: PASSWORD });
  const { error } = await supabase.auth.updateUser({ password: 'orbit-Meadow-93!' });
  assert.equal(error, null);
  const { error: otherError } = await other.auth.getUser();
  // auth-js turns session_not_found into AuthSessionMissingError and drops the session.
  assert.equal(otherError?.name, 'AuthSessionMissingError', String(otherError));
  assert.equal((await supabase.auth.getUser()).error, null, 'this session stays');
  const { error: signInError } = await client().auth.signInWithPassword({ email: address, password: 'orbit-Meadow-93!' });
  assert.equal(signInError, null);
});

test('after the reauthentication window a new password or email needs current_password', async () => {
  const { supabase, email: address } = await signedUp();
  await sleep(reauthWindowMs + 500);
  // A fresh access token from a refresh is not a fresh sign-in.
  assert.equal((await supabase.auth.refreshSession()).error, null);
  for (const attributes of [{ password: 'orbit-Meadow-93!' }, { email: email('moved') }]) {
    const { error } = await supabase.auth.updateUser(attributes);
    assert.ok(error instanceof AuthApiError, String(error));
    assert.equal(error.status, 400);
    assert.equal(error.code, 'reauthentication_needed');
  }
  const { error: wrong } = await supabase.auth.updateUser({ password: 'orbit-Meadow-93!', current_password: 'wrong-Guess-1!' });
  assert.equal(wrong?.code, 'current_password_mismatch', String(wrong));
  const { error } = await supabase.auth.updateUser({ password: 'orbit-Meadow-93!', current_password: PASSWORD });
  assert.equal(error, null);
  const { error: signInError } = await client().auth.signInWithPassword({ email: address, password: 'orbit-Meadow-93!' });
  assert.equal(signInError, null);
});

test('a refresh token reused after the grace interval revokes the session', async () => {
  const { supabase, session } = await signedUp();
  const stolen = session.refresh_token;
  const { error } = await supabase.auth.refreshSession();
  assert.equal(error, null);
  await sleep(graceMs + 600);
  const thief = client();
  const { error: reuse } = await thief.auth.refreshSession({ refresh_token: stolen });
  assert.ok(reuse instanceof AuthApiError, String(reuse));
  assert.equal(reuse.status, 400, 'a bad refresh token is a 4xx, never a 5xx');
  assert.equal(reuse.code, 'refresh_token_already_used');
  const { error: victim } = await supabase.auth.refreshSession();
  assert.equal(victim?.code, 'refresh_token_not_found', 'the whole session is gone');
  const { error: unknown } = await client().auth.refreshSession({ refresh_token: 'not-a-token-we-issued' });
  assert.equal(unknown?.status, 400);
  assert.equal(unknown?.code, 'refresh_token_not_found');
});

test('two clients refreshing the same session at once both succeed with the same successor', async () => {
  const { session } = await signedUp();
  const [a, b] = [client(), client()];
  const [ra, rb] = await Promise.all([
    a.auth.refreshSession({ refresh_token: session.refresh_token }),
    b.auth.refreshSession({ refresh_token: session.refresh_token }),
  ]);
  assert.equal(ra.error, null);
  assert.equal(rb.error, null);
  assert.equal(ra.data.session.refresh_token, rb.data.session.refresh_token);
  assert.equal((await a.auth.getUser()).error, null);
});

test('a signed-out session is session_not_found; signOut scopes end the right sessions', async () => {
  const { supabase, email: address } = await signedUp();
  const [second, third] = [client(), client()];
  await second.auth.signInWithPassword({ email: address, password: PASSWORD });
  await third.auth.signInWithPassword({ email: address, password: PASSWORD });
  const secondToken = (await second.auth.getSession()).data.session.access_token;

  assert.equal((await supabase.auth.signOut({ scope: 'others' })).error, null);
  assert.equal((await supabase.auth.getUser()).error, null, 'others keeps this one');
  const raw = await fetch(`${url}/auth/v1/user`, {
    headers: { authorization: `Bearer ${secondToken}`, 'x-supabase-api-version': '2024-01-01' },
  });
  assert.equal(raw.status, 403);
  assert.equal((await raw.json()).code, 'session_not_found');
  const { error: secondError } = await client().auth.getUser(secondToken);
  assert.equal(secondError?.name, 'AuthSessionMissingError', String(secondError));

  const fourth = client();
  await fourth.auth.signInWithPassword({ email: address, password: PASSWORD });
  const fourthToken = (await fourth.auth.getSession()).data.session.access_token;
  assert.equal((await supabase.auth.signOut({ scope: 'local' })).error, null);
  assert.equal((await client().auth.getUser(fourthToken)).error, null, 'local ends only its own session');
  assert.equal((await fourth.auth.signOut()).error, null);
  assert.equal((await client().auth.getUser(fourthToken)).error?.name, 'AuthSessionMissingError');
});

test('getClaims verifies the ES256 token against the JWKS', async () => {
  const { supabase, user } = await signedUp();
  const { data, error } = await supabase.auth.getClaims();
  assert.equal(error, null);
  assert.equal(data.header.alg, 'ES256');
  assert.ok(data.header.kid);
  assert.equal(data.claims.sub, user.id);
  assert.equal(data.claims.app_metadata.role, 'user');
  const jwks = await (await fetch(`${url}/auth/v1/.well-known/jwks.json`)).json();
  assert.ok(jwks.keys.some((k) => k.kid === data.header.kid));
});

test('settings and health answer as GoTrue does', async () => {
  const headers = { apikey: anonKey };
  const settings = await (await fetch(`${url}/auth/v1/settings`, { headers })).json();
  assert.equal(settings.external.email, true);
  assert.equal(settings.mailer_autoconfirm, true);
  const health = await (await fetch(`${url}/auth/v1/health`, { headers })).json();
  assert.equal(health.name, 'GoTrue');
});

test('errors come in both API versions', async () => {
  const body = JSON.stringify({ email: email('nobody'), password: PASSWORD });
  const current = await fetch(`${url}/auth/v1/token?grant_type=password`, {
    method: 'POST', body, headers: { 'content-type': 'application/json', 'x-supabase-api-version': '2024-01-01' },
  });
  assert.equal(current.status, 400);
  assert.equal(current.headers.get('x-supabase-api-version'), '2024-01-01');
  const c = await current.json();
  assert.equal(c.code, 'invalid_credentials');
  assert.equal(c.message, 'Invalid login credentials');
  const legacy = await fetch(`${url}/auth/v1/token?grant_type=password`, {
    method: 'POST', body, headers: { 'content-type': 'application/json' },
  });
  const l = await legacy.json();
  assert.equal(l.code, 400);
  assert.equal(l.error_code, 'invalid_credentials');
  assert.equal(l.msg, 'Invalid login credentials');
  assert.equal(legacy.headers.get('x-sb-error-code'), 'invalid_credentials');
  const bad = await fetch(`${url}/auth/v1/signup`, { method: 'POST', body: '{"email":', headers: { 'content-type': 'application/json' } });
  assert.equal(bad.status, 400);
  assert.equal((await bad.json()).error_code, 'bad_json');
});

test('public endpoints ignore a stale or forged bearer', async () => {
  const { error } = await client().auth.signUp({ email: email(), password: PASSWORD });
  assert.equal(error, null);
  const response = await fetch(`${url}/auth/v1/signup`, {
    method: 'POST',
    body: JSON.stringify({ email: email(), password: PASSWORD }),
    headers: { 'content-type': 'application/json', authorization: 'Bearer expired.or.forged', apikey: anonKey },
  });
  assert.equal(response.status, 200);
});

test('too many password changes are over_request_rate_limit with Retry-After', async () => {
  const { supabase } = await signedUp();
  let limited = null;
  for (let i = 0; i < 8 && !limited; i++) {
    const { error } = await supabase.auth.updateUser({ password: `orbit-Meadow-9${i}!x` });
    if (error) limited = error;
  }
  assert.ok(limited instanceof AuthApiError, String(limited));
  assert.equal(limited.status, 429);
  assert.equal(limited.code, 'over_request_rate_limit');
});
