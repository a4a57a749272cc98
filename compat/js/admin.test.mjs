// The admin side of supabase-js (supabase.auth.admin) with the service-role key.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AuthApiError } from '@supabase/supabase-js';
import { admin, client, email, PASSWORD, signedUp, url, anonKey, serviceRoleKey } from './helpers.mjs';

test('listUsers pages with the Link and X-Total-Count headers as the client parses them', async () => {
  for (let i = 0; i < 5; i++) await signedUp();
  const supabase = admin();
  const { data: first, error } = await supabase.auth.admin.listUsers({ page: 1, perPage: 2 });
  assert.equal(error, null);
  assert.equal(first.users.length, 2);
  assert.ok(first.total >= 5);
  assert.equal(first.nextPage, 2);
  assert.equal(first.lastPage, Number(String(Math.ceil(first.total / 2))[0]), 'auth-js reads the first digit of the page');
  assert.equal(first.aud, 'authenticated');
  const { data: second } = await supabase.auth.admin.listUsers({ page: 2, perPage: 2 });
  assert.equal(second.users.length, 2);
  const ids = new Set([...first.users, ...second.users].map((u) => u.id));
  assert.equal(ids.size, 4, 'pages do not overlap');
  const raw = await fetch(`${url}/auth/v1/admin/users?page=1&per_page=2`, { headers: { authorization: `Bearer ${serviceRoleKey}` } });
  assert.match(raw.headers.get('link'), /^<\/auth\/v1\/admin\/users\?page=2&per_page=2>; rel="next", <\/auth\/v1\/admin\/users\?page=\d+&per_page=2>; rel="last"$/);
  assert.ok(Number(raw.headers.get('x-total-count')) >= 3);
});

test('createUser, getUserById, updateUserById and deleteUser', async () => {
  const supabase = admin();
  const address = email('created');
  const { data: created, error } = await supabase.auth.admin.createUser({
    email: address, password: PASSWORD, email_confirm: true, user_metadata: { name: 'Grace' }, app_metadata: { team: 'navy' },
  });
  assert.equal(error, null);
  assert.equal(created.user.email, address);
  assert.equal(created.user.user_metadata.name, 'Grace');
  assert.equal(created.user.app_metadata.team, 'navy');
  assert.equal(created.user.app_metadata.role, 'user');
  assert.ok(created.user.email_confirmed_at);
  const id = created.user.id;

  const { data: got } = await supabase.auth.admin.getUserById(id);
  assert.equal(got.user.id, id);

  const { data: updated, error: updateError } = await supabase.auth.admin.updateUserById(id, {
    user_metadata: { title: 'Rear Admiral' }, app_metadata: { role: 'admin' }, password: 'orbit-Meadow-93!',
  });
  assert.equal(updateError, null);
  assert.equal(updated.user.user_metadata.name, 'Grace', 'metadata merges');
  assert.equal(updated.user.user_metadata.title, 'Rear Admiral');
  assert.equal(updated.user.app_metadata.role, 'admin', 'the RBAC role changes through app_metadata.role');
  const { error: signInError } = await client().auth.signInWithPassword({ email: address, password: 'orbit-Meadow-93!' });
  assert.equal(signInError, null);

  const { data: banned } = await supabase.auth.admin.updateUserById(id, { ban_duration: '24h' });
  assert.ok(new Date(banned.user.banned_until) > new Date());
  const { error: bannedError } = await client().auth.signInWithPassword({ email: address, password: 'orbit-Meadow-93!' });
  assert.equal(bannedError?.code, 'user_banned');
  await supabase.auth.admin.updateUserById(id, { ban_duration: 'none' });
  assert.equal((await client().auth.signInWithPassword({ email: address, password: 'orbit-Meadow-93!' })).error, null);

  const { error: dup } = await supabase.auth.admin.createUser({ email: address, password: PASSWORD });
  assert.equal(dup?.code, 'email_exists');
  assert.equal(dup?.status, 422);

  const { error: lastAdmin } = await supabase.auth.admin.deleteUser(id, true);
  assert.equal(lastAdmin?.code, 'last_admin', 'the only active admin cannot be deleted');
  assert.equal(lastAdmin?.status, 409);
  const { error: demoteLast } = await supabase.auth.admin.updateUserById(id, { app_metadata: { role: 'user' } });
  assert.equal(demoteLast?.code, 'last_admin', 'nor demoted');
  const { error: secondAdmin } = await supabase.auth.admin.createUser({ email: email('admin'), password: PASSWORD, app_metadata: { role: 'admin' } });
  assert.equal(secondAdmin, null);
  const { error: softError } = await supabase.auth.admin.deleteUser(id, true);
  assert.equal(softError, null);
  const { error: goneError } = await supabase.auth.admin.getUserById(id);
  assert.equal(goneError?.status, 404);
  assert.equal(goneError?.code, 'user_not_found');
  const { data: again, error: reuseError } = await supabase.auth.admin.createUser({ email: address, password: PASSWORD });
  assert.equal(reuseError, null, 'a soft delete frees the email');
  const { error: hardError } = await supabase.auth.admin.deleteUser(again.user.id);
  assert.equal(hardError, null);
  assert.equal((await supabase.auth.admin.getUserById(again.user.id)).error?.code, 'user_not_found');
});

test('the anon key and user tokens never open the admin API', async () => {
  const { error: anonError } = await client().auth.admin.listUsers();
  assert.ok(anonError instanceof AuthApiError, String(anonError));
  assert.equal(anonError.status, 403);
  assert.equal(anonError.code, 'not_admin');
  const { session } = await signedUp();
  const response = await fetch(`${url}/auth/v1/admin/users`, {
    headers: { authorization: `Bearer ${session.access_token}`, apikey: anonKey, 'x-supabase-api-version': '2024-01-01' },
  });
  assert.equal(response.status, 403);
  assert.equal((await response.json()).code, 'not_admin');
  const none = await fetch(`${url}/auth/v1/admin/users`);
  assert.equal(none.status, 401);
});
