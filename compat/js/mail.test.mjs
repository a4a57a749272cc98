// The mailed flows of supabase-js against the gatehouse with a mailer (run.sh's second
// server): confirmation, magic links and codes, recovery, email change, reauthentication,
// invitations, generateLink, and the emailed link followed as a browser does (implicit and
// PKCE). Codes and links are read out of the .eml files the server wrote.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AuthApiError } from '@supabase/supabase-js';
import { PASSWORD, reauthWindowMs } from './helpers.mjs';
import {
  mailUrl, mailAnonKey, mailClient, mailAdmin, mailEmail, memoryStorage, waitForMail, messagesTo, mailCountAfter,
  followLink, postLink, formOf, sleep,
} from './mail-helpers.mjs';

const NEW_PASSWORD = 'orbit-Meadow-93!';
const APP = 'http://localhost:3000';

function assertOtpExpired(error) {
  assert.ok(error instanceof AuthApiError, String(error));
  assert.equal(error.status, 403);
  assert.equal(error.code, 'otp_expired');
}

/** A confirmed account made with the admin API (no mail), and a client signed in to it. */
async function confirmedUser(tag) {
  const address = mailEmail(tag);
  const { error } = await mailAdmin().auth.admin.createUser({ email: address, password: PASSWORD, email_confirm: true });
  assert.equal(error, null);
  const supabase = mailClient();
  const { error: signInError } = await supabase.auth.signInWithPassword({ email: address, password: PASSWORD });
  assert.equal(signInError, null);
  return { supabase, email: address };
}

/** A 6-digit code that is not `code`. */
const otherCode = (code) => (code === '000000' ? '111111' : '000000');

/** The fragment of a Location header as an object. */
const fragmentOf = (location) => Object.fromEntries(new URLSearchParams(new URL(location).hash.slice(1)));

test('with a mailer, settings say sign-ups are not autoconfirmed', async () => {
  const settings = await (await fetch(`${mailUrl}/auth/v1/settings`, { headers: { apikey: mailAnonKey } })).json();
  assert.equal(settings.mailer_autoconfirm, false);
  assert.equal(settings.external.email, true);
});

test('signUp waits for confirmation: no session, email_not_confirmed, then verifyOtp signup', async () => {
  const supabase = mailClient();
  const address = mailEmail('signup');
  const { data, error } = await supabase.auth.signUp({ email: address, password: PASSWORD, options: { data: { name: 'Ada' } } });
  assert.equal(error, null);
  assert.equal(data.session, null, 'no session before the address is confirmed');
  assert.equal(data.user.email, address);
  assert.ok(!data.user.email_confirmed_at);
  assert.equal(data.user.identities.length, 1, 'a real sign-up has an identity');
  assert.equal(data.user.user_metadata.name, 'Ada');

  const mail = await waitForMail(address);
  assert.equal(mail.type, 'signup');
  assert.match(mail.subject, /confirm/i);
  assert.equal(new URL(mail.link).origin, mailUrl, 'the link points at the server');
  assert.equal(mail.token.length, 43);
  assert.ok(mail.html.includes(mail.code), 'the HTML part carries the code too');

  const { data: refused, error: refusedError } = await mailClient().auth.signInWithPassword({ email: address, password: PASSWORD });
  assert.ok(refusedError instanceof AuthApiError, String(refusedError));
  assert.equal(refusedError.status, 400);
  assert.equal(refusedError.code, 'email_not_confirmed');
  assert.equal(refused.session, null);
  const { error: wrongPassword } = await mailClient().auth.signInWithPassword({ email: address, password: NEW_PASSWORD });
  assert.equal(wrongPassword?.code, 'invalid_credentials', 'only the right password learns that the address is unconfirmed');

  assertOtpExpired((await supabase.auth.verifyOtp({ email: address, token: otherCode(mail.code), type: 'signup' })).error);

  const { data: verified, error: verifyError } = await supabase.auth.verifyOtp({ email: address, token: mail.code, type: 'signup' });
  assert.equal(verifyError, null);
  assert.ok(verified.session?.access_token && verified.session.refresh_token);
  assert.equal(verified.user.email, address);
  assert.ok(verified.user.email_confirmed_at, 'confirmed');
  assert.equal((await supabase.auth.getUser()).data.user?.id, verified.user.id, 'verifyOtp kept the session');

  assertOtpExpired((await mailClient().auth.verifyOtp({ email: address, token: mail.code, type: 'signup' })).error);
  const { data: signedIn, error: signInError } = await mailClient().auth.signInWithPassword({ email: address, password: PASSWORD });
  assert.equal(signInError, null);
  assert.equal(signedIn.user.id, verified.user.id);
});

test('resend and a repeated sign-up mail a new confirmation, and the newest code voids the older', async () => {
  const address = mailEmail('resend');
  const { data: signedUp } = await mailClient().auth.signUp({ email: address, password: PASSWORD });
  const first = await waitForMail(address, 1);
  const { data: resent, error } = await mailClient().auth.resend({ type: 'signup', email: address });
  assert.equal(error, null);
  assert.deepEqual(resent, { user: null, session: null });
  const second = await waitForMail(address, 2);
  assert.equal(second.type, 'signup');
  assert.notEqual(second.token, first.token);
  assertOtpExpired((await mailClient().auth.verifyOtp({ token_hash: first.token, type: 'signup' })).error);

  // Signing up again before confirming: mailed again; the answer looks like a new account's
  // (gatehouse does not show the pending account's record, unlike GoTrue), and the mail
  // carries this sign-up's password.
  const { data: again, error: againError } = await mailClient().auth.signUp({ email: address, password: NEW_PASSWORD });
  assert.equal(againError, null);
  assert.equal(again.session, null);
  assert.notEqual(again.user.id, signedUp.user.id);
  assert.equal(again.user.identities.length, 1);
  const third = await waitForMail(address, 3);
  assertOtpExpired((await mailClient().auth.verifyOtp({ token_hash: second.token, type: 'signup' })).error);
  const { data, error: verifyError } = await mailClient().auth.verifyOtp({ token_hash: third.token, type: 'signup' });
  assert.equal(verifyError, null);
  assert.equal(data.user.email, address);
  assert.ok(data.session);
  // The confirmed sign-up's password, not the first one's (whoever pre-registers an
  // address keeps nothing in it).
  assert.equal((await mailClient().auth.signInWithPassword({ email: address, password: NEW_PASSWORD })).error, null);
  assert.ok((await mailClient().auth.signInWithPassword({ email: address, password: PASSWORD })).error);
});

test('signing up with a registered address: a stand-in user with no identities, and the owner is mailed', async () => {
  const { email: address } = await confirmedUser('taken');
  const { data, error } = await mailClient().auth.signUp({ email: address, password: NEW_PASSWORD });
  assert.equal(error, null, 'no user_already_exists: that would tell who has an account');
  assert.equal(data.session, null);
  assert.equal(data.user.email, address);
  assert.deepEqual(data.user.identities, [], 'supabase docs: identities is empty when the user already exists');
  const mail = await waitForMail(address);
  assert.match(mail.text, /already exists/i);
  // The password did not change.
  assert.equal((await mailClient().auth.signInWithPassword({ email: address, password: PASSWORD })).error, null);
  assert.equal((await mailClient().auth.signInWithPassword({ email: address, password: NEW_PASSWORD })).error?.code, 'invalid_credentials');
});

test('signInWithOtp mails a code that verifyOtp type email redeems, for an existing and a new user', async () => {
  const { email: existing } = await confirmedUser('otp');
  const supabase = mailClient();
  const { data, error } = await supabase.auth.signInWithOtp({ email: existing });
  assert.equal(error, null);
  assert.equal(data.session, null);
  const mail = await waitForMail(existing);
  assert.equal(mail.type, 'magiclink');
  const { data: verified, error: verifyError } = await supabase.auth.verifyOtp({ email: existing, token: mail.code, type: 'email' });
  assert.equal(verifyError, null);
  assert.equal(verified.user.email, existing);
  assert.ok(verified.session.access_token);
  assert.equal((await supabase.auth.getUser()).error, null);

  // An unknown address gets an account (shouldCreateUser defaults to true) with the data.
  const fresh = mailEmail('otp-new');
  assert.equal((await mailClient().auth.signInWithOtp({ email: fresh, options: { data: { plan: 'pro' } } })).error, null);
  const first = await waitForMail(fresh);
  const { data: created, error: createdError } = await mailClient().auth.verifyOtp({ email: fresh, token: first.code, type: 'email' });
  assert.equal(createdError, null);
  assert.equal(created.user.email, fresh);
  assert.equal(created.user.user_metadata.plan, 'pro');
  assert.ok(created.user.email_confirmed_at);
});

test('signInWithOtp with shouldCreateUser false creates nobody and mails nothing', async () => {
  const stranger = mailEmail('otp-nobody');
  const { error } = await mailClient().auth.signInWithOtp({ email: stranger, options: { shouldCreateUser: false } });
  // GoTrue answers 422 otp_disabled here; gatehouse answers {} to every address (no enumeration).
  assert.equal(error, null);
  assert.equal(await mailCountAfter(stranger, 1500), 0);
  const { data } = await mailAdmin().auth.admin.listUsers({ page: 1, perPage: 1000 });
  assert.ok(!data.users.some((u) => u.email === stranger));
});

test('resetPasswordForEmail, verifyOtp recovery, then updateUser sets the new password', async () => {
  const { email: address } = await confirmedUser('recover');
  const supabase = mailClient();
  const { data, error } = await supabase.auth.resetPasswordForEmail(address, { redirectTo: `${APP}/reset` });
  assert.equal(error, null);
  assert.deepEqual(data, {});
  const mail = await waitForMail(address);
  assert.equal(mail.type, 'recovery');
  assert.equal(mail.redirectTo, `${APP}/reset`);

  const { data: verified, error: verifyError } = await supabase.auth.verifyOtp({ email: address, token: mail.code, type: 'recovery' });
  assert.equal(verifyError, null);
  assert.ok(verified.session.access_token);
  // A redeemed recovery code is a recent authentication: no current_password, no nonce.
  const { error: updateError } = await supabase.auth.updateUser({ password: NEW_PASSWORD });
  assert.equal(updateError, null);
  assert.equal((await mailClient().auth.signInWithPassword({ email: address, password: PASSWORD })).error?.code, 'invalid_credentials');
  assert.equal((await mailClient().auth.signInWithPassword({ email: address, password: NEW_PASSWORD })).error, null);
});

test('resetPasswordForEmail answers {} for an unknown address and mails nothing', async () => {
  const stranger = mailEmail('recover-nobody');
  const { data, error } = await mailClient().auth.resetPasswordForEmail(stranger);
  assert.equal(error, null);
  assert.deepEqual(data, {});
  assert.equal(await mailCountAfter(stranger, 1500), 0);
});

test('updateUser email: both addresses are mailed and the change applies once both are verified', async () => {
  const { supabase, email: address } = await confirmedUser('change');
  const newEmail = mailEmail('changed');
  const { data, error } = await supabase.auth.updateUser({ email: newEmail });
  assert.equal(error, null);
  assert.equal(data.user.email, address, 'nothing changes before the confirmations');
  assert.equal(data.user.new_email, newEmail);

  const [current, next] = await Promise.all([waitForMail(address), waitForMail(newEmail)]);
  assert.equal(current.type, 'email_change');
  assert.equal(next.type, 'email_change');
  assert.notEqual(current.token, next.token);

  // The first half: GoTrue answers {msg, code}, which auth-js turns into no user and no session.
  const { data: half, error: halfError } = await mailClient().auth.verifyOtp({ token_hash: current.token, type: 'email_change' });
  assert.equal(halfError, null);
  assert.equal(half.session, null);
  assert.equal(half.user, null);
  assert.equal((await supabase.auth.getUser()).data.user.email, address, 'one confirmation is not enough');

  const { data: done, error: doneError } = await mailClient().auth.verifyOtp({ token_hash: next.token, type: 'email_change' });
  assert.equal(doneError, null);
  assert.ok(done.session?.access_token);
  assert.equal(done.user.email, newEmail);
  assert.equal((await supabase.auth.getUser()).data.user.email, newEmail);
  assert.equal((await mailClient().auth.signInWithPassword({ email: newEmail, password: PASSWORD })).error, null);
  assert.equal((await mailClient().auth.signInWithPassword({ email: address, password: PASSWORD })).error?.code, 'invalid_credentials');
  assertOtpExpired((await mailClient().auth.verifyOtp({ token_hash: current.token, type: 'email_change' })).error);
});

test('reauthenticate mails a nonce that lets an old sign-in change its password', async () => {
  const { supabase, email: address } = await confirmedUser('reauth');
  await sleep(reauthWindowMs + 500);
  const { error: needed } = await supabase.auth.updateUser({ password: NEW_PASSWORD });
  assert.ok(needed instanceof AuthApiError, String(needed));
  assert.equal(needed.code, 'reauthentication_needed');

  const { data, error } = await supabase.auth.reauthenticate();
  assert.equal(error, null);
  assert.deepEqual(data, { user: null, session: null });
  const mail = await waitForMail(address);
  assert.ok(mail.text.includes(mail.code));

  const { error: wrongError } = await supabase.auth.updateUser({ password: NEW_PASSWORD, nonce: otherCode(mail.code) });
  assert.ok(wrongError instanceof AuthApiError, String(wrongError));
  assert.equal(wrongError.code, 'reauthentication_not_valid'); // the status: see the todo test below

  const { error: updateError } = await supabase.auth.updateUser({ password: NEW_PASSWORD, nonce: mail.code });
  assert.equal(updateError, null);
  assert.equal((await mailClient().auth.signInWithPassword({ email: address, password: NEW_PASSWORD })).error, null);
});

test('auth.admin.inviteUserByEmail mails an invitation that verifyOtp invite redeems', async () => {
  const address = mailEmail('invited');
  const { data, error } = await mailAdmin().auth.admin.inviteUserByEmail(address, { data: { team: 'compilers' }, redirectTo: `${APP}/welcome` });
  assert.equal(error, null);
  assert.equal(data.user.email, address);
  assert.equal(data.user.user_metadata.team, 'compilers'); // invited_at: see the todo test below
  const mail = await waitForMail(address);
  assert.equal(mail.type, 'invite');
  assert.equal(mail.redirectTo, `${APP}/welcome`);

  const supabase = mailClient();
  const { data: verified, error: verifyError } = await supabase.auth.verifyOtp({ token_hash: mail.token, type: 'invite' });
  assert.equal(verifyError, null);
  assert.equal(verified.user.id, data.user.id);
  assert.ok(verified.user.email_confirmed_at);
  // The invited user picks a password: a redeemed link is a recent authentication.
  assert.equal((await supabase.auth.updateUser({ password: NEW_PASSWORD })).error, null);
  assert.equal((await mailClient().auth.signInWithPassword({ email: address, password: NEW_PASSWORD })).error, null);
});

test('auth.admin.generateLink makes a code and a token hash that verifyOtp redeems, and mails nothing', async () => {
  const address = mailEmail('generated');
  const { error: createError } = await mailAdmin().auth.admin.createUser({ email: address, password: PASSWORD, email_confirm: true });
  assert.equal(createError, null);
  const { data, error } = await mailAdmin().auth.admin.generateLink({ type: 'magiclink', email: address });
  assert.equal(error, null);
  assert.equal(data.user.email, address);
  const { action_link, email_otp, hashed_token, verification_type, redirect_to } = data.properties;
  assert.equal(verification_type, 'magiclink');
  assert.match(email_otp, /^\d{6}$/);
  assert.ok(hashed_token);
  assert.equal(redirect_to, mailUrl, 'the site URL (the public URL here); options.redirectTo: see the todo test below');
  const link = new URL(action_link);
  assert.equal(link.origin + link.pathname, `${mailUrl}/auth/v1/verify`);
  assert.equal(link.searchParams.get('token'), hashed_token);
  assert.equal(link.searchParams.get('type'), 'magiclink');

  const { data: byCode, error: codeError } = await mailClient().auth.verifyOtp({ email: address, token: email_otp, type: 'magiclink' });
  assert.equal(codeError, null);
  assert.equal(byCode.user.email, address);
  assert.ok(byCode.session.access_token);

  const { data: again } = await mailAdmin().auth.admin.generateLink({ type: 'magiclink', email: address });
  const { data: byHash, error: hashError } = await mailClient().auth.verifyOtp({ token_hash: again.properties.hashed_token, type: 'magiclink' });
  assert.equal(hashError, null);
  assert.equal(byHash.user.email, address);
  assert.equal(await mailCountAfter(address, 1500), 0, 'generateLink sends nothing');
});

test('auth.admin.generateLink signup with a password: the redeemed link confirms the new account', async () => {
  const address = mailEmail('generated-signup');
  const { data, error } = await mailAdmin().auth.admin.generateLink({ type: 'signup', email: address, password: PASSWORD });
  assert.equal(error, null);
  assert.equal(data.properties.verification_type, 'signup');
  assert.equal(data.user.email, address);
  assert.equal((await mailClient().auth.signInWithPassword({ email: address, password: PASSWORD })).error?.code, 'email_not_confirmed');
  const { error: verifyError } = await mailClient().auth.verifyOtp({ token_hash: data.properties.hashed_token, type: 'signup' });
  assert.equal(verifyError, null);
  assert.equal((await mailClient().auth.signInWithPassword({ email: address, password: PASSWORD })).error, null);
  assert.equal(await mailCountAfter(address, 500), 0);
});

test('the emailed link, implicit flow: the page posts, and the redirect carries the session in its fragment', async () => {
  const address = mailEmail('link');
  const { error } = await mailClient().auth.signUp({ email: address, password: PASSWORD, options: { emailRedirectTo: `${APP}/welcome` } });
  assert.equal(error, null);
  const mail = await waitForMail(address);
  assert.equal(mail.redirectTo, `${APP}/welcome`);

  const response = await followLink(mail.link);
  assert.equal(response.status, 303);
  const location = response.headers.get('location');
  assert.ok(location.startsWith(`${APP}/welcome#`), location);
  const fragment = fragmentOf(location);
  assert.equal(fragment.token_type, 'bearer');
  assert.equal(fragment.type, 'signup');
  assert.ok(Number(fragment.expires_in) > 0 && Number(fragment.expires_at) > Date.now() / 1000);

  // What detectSessionInUrl does in a browser: the app takes the tokens from the fragment.
  const supabase = mailClient();
  const { data, error: setError } = await supabase.auth.setSession({ access_token: fragment.access_token, refresh_token: fragment.refresh_token });
  assert.equal(setError, null);
  assert.equal(data.user.email, address);
  assert.ok(data.user.email_confirmed_at);

  // The link is spent: its page has no button, and the same form again is an error, in
  // the fragment, on the site URL's page.
  const spent = await (await fetch(mail.link)).text();
  assert.ok(!spent.includes('<form'), spent);
  const replay = await postLink(mail.link);
  assert.equal(replay.status, 303);
  const failed = fragmentOf(replay.headers.get('location'));
  assert.equal(failed.error, 'access_denied');
  assert.equal(failed.error_code, 'otp_expired');
  assert.ok(failed.error_description);
});

test('a redirect outside the allow list falls back to the site URL', async () => {
  const address = mailEmail('evil');
  const { error } = await mailClient().auth.signUp({ email: address, password: PASSWORD, options: { emailRedirectTo: 'https://evil.example/steal' } });
  assert.equal(error, null);
  const mail = await waitForMail(address);
  assert.ok(!mail.link.includes('evil.example'), mail.link);
  const response = await followLink(mail.link);
  assert.equal(response.status, 303);
  assert.ok(!response.headers.get('location').includes('evil.example'));
  assert.ok(response.headers.get('location').startsWith(`${mailUrl}#access_token=`) || response.headers.get('location').startsWith(`${mailUrl}/#access_token=`), response.headers.get('location'));
});

test('PKCE: signInWithOtp, the link followed as a browser, ?code=, exchangeCodeForSession', async () => {
  const { email: address } = await confirmedUser('pkce');
  const storage = memoryStorage();
  const supabase = mailClient({ flowType: 'pkce', storage, persistSession: true });
  const { error } = await supabase.auth.signInWithOtp({ email: address, options: { emailRedirectTo: `${APP}/cb` } });
  assert.equal(error, null);
  assert.ok([...storage.items.keys()].some((k) => k.includes('code-verifier')), 'auth-js kept a code verifier');
  const mail = await waitForMail(address);
  assert.equal(mail.redirectTo, `${APP}/cb`);

  const response = await followLink(mail.link);
  assert.equal(response.status, 303);
  const location = new URL(response.headers.get('location'));
  assert.equal(location.origin + location.pathname, `${APP}/cb`);
  assert.equal(location.hash, '', 'no tokens in the URL in the PKCE flow');
  const code = location.searchParams.get('code');
  assert.ok(code, String(location));

  // A second tab with a copy of the storage: the same verifier, for the replay below.
  const copy = memoryStorage();
  for (const [key, value] of storage.items) copy.setItem(key, value);
  const { data, error: exchangeError } = await supabase.auth.exchangeCodeForSession(code);
  assert.equal(exchangeError, null);
  assert.equal(data.user.email, address);
  assert.ok(data.session.access_token && data.session.refresh_token);
  assert.equal((await supabase.auth.getUser()).data.user?.email, address, 'the session is stored');

  // The code is good once, even with the right verifier.
  const tab = mailClient({ flowType: 'pkce', storage: copy, persistSession: true });
  const { data: replayed, error: replay } = await tab.auth.exchangeCodeForSession(code);
  assert.ok(replay instanceof AuthApiError, String(replay));
  assert.ok(replay.status >= 400 && replay.status < 500);
  assert.equal(replayed.session, null);
});

test('PKCE: resetPasswordForEmail, link, exchangeCodeForSession, updateUser', async () => {
  const { email: address } = await confirmedUser('pkce-recover');
  const supabase = mailClient({ flowType: 'pkce', storage: memoryStorage(), persistSession: true });
  assert.equal((await supabase.auth.resetPasswordForEmail(address, { redirectTo: `${APP}/reset` })).error, null);
  const mail = await waitForMail(address);
  const location = new URL((await followLink(mail.link)).headers.get('location'));
  const { data, error } = await supabase.auth.exchangeCodeForSession(location.searchParams.get('code'));
  assert.equal(error, null);
  assert.equal(data.redirectType, 'recovery', 'auth-js marks a recovery verifier');
  assert.equal((await supabase.auth.updateUser({ password: NEW_PASSWORD })).error, null);
  assert.equal((await mailClient().auth.signInWithPassword({ email: address, password: NEW_PASSWORD })).error, null);
});

test('opening the link without submitting (a mail scanner) consumes nothing', async () => {
  const { email: address } = await confirmedUser('scanner');
  assert.equal((await mailClient().auth.signInWithOtp({ email: address })).error, null);
  const mail = await waitForMail(address);
  for (let i = 0; i < 3; i++) {
    const page = await fetch(mail.link);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type'), /^text\/html/);
    const form = formOf(await page.text());
    assert.equal(form.method, 'post');
    assert.equal(form.fields.token, mail.token);
  }
  assert.equal((await fetch(mail.link, { method: 'HEAD' })).status < 500, true);
  // Still good: by its code, and so by its link (one token).
  const { data, error } = await mailClient().auth.verifyOtp({ email: address, token: mail.code, type: 'email' });
  assert.equal(error, null);
  assert.equal(data.user.email, address);
  assert.equal((await messagesTo(address)).length, 1);
});

// GoTrue behaviour that gatehouse once differed in (now matched), and, as `todo` tests that
// run and are reported but do not fail the run, where it still differs.

test('a wrong reauthentication nonce is 422 reauthentication_not_valid, as GoTrue answers', async () => {
  const { supabase, email: address } = await confirmedUser('reauth-wrong');
  await sleep(reauthWindowMs + 500);
  assert.equal((await supabase.auth.reauthenticate()).error, null);
  const mail = await waitForMail(address);
  const { error } = await supabase.auth.updateUser({ password: NEW_PASSWORD, nonce: otherCode(mail.code) });
  assert.ok(error instanceof AuthApiError, String(error));
  assert.equal(error.code, 'reauthentication_not_valid');
  assert.equal(error.status, 422);
});

test('an invited user has invited_at, as GoTrue\'s User does', {
  todo: 'gatehouse\'s User has no invited_at (nor confirmation_sent_at, recovery_sent_at, email_change_sent_at)',
}, async () => {
  const { data, error } = await mailAdmin().auth.admin.inviteUserByEmail(mailEmail('invited-at'));
  assert.equal(error, null);
  assert.ok(data.user.invited_at, JSON.stringify(data.user));
  assert.equal(data.user.app_metadata.invited_at, undefined);
});

test('generateLink honours options.redirectTo (auth-js sends it as ?redirect_to=)', async () => {
  const address = mailEmail('generated-redirect');
  await mailAdmin().auth.admin.createUser({ email: address, password: PASSWORD, email_confirm: true });
  const { data, error } = await mailAdmin().auth.admin.generateLink({ type: 'magiclink', email: address, options: { redirectTo: `${APP}/in` } });
  assert.equal(error, null);
  assert.equal(data.properties.redirect_to, `${APP}/in`);
  assert.equal(new URL(data.properties.action_link).searchParams.get('redirect_to'), `${APP}/in`);
});

test('generateLink magiclink for an unknown address makes a signup link, as GoTrue does', async () => {
  const address = mailEmail('generated-unknown');
  const { data, error } = await mailAdmin().auth.admin.generateLink({ type: 'magiclink', email: address });
  assert.equal(error, null, String(error));
  assert.equal(data.properties.verification_type, 'signup');
  assert.equal(data.user.email, address);
  const { error: verifyError } = await mailClient().auth.verifyOtp({ token_hash: data.properties.hashed_token, type: 'signup' });
  assert.equal(verifyError, null);
});
