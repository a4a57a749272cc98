// Clients of the gatehouse that run.sh started with a mailer (MAIL_GATEHOUSE_URL,
// MAIL_ANON_KEY, MAIL_SERVICE_ROLE_KEY), and reading what it mailed: every message is an
// .eml file in MAIL_DIR, parsed with mailparser (the parser of the nodemailer project), so
// the tests see what a mail client would, quoted-printable and all.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createClient } from '@supabase/supabase-js';
import { simpleParser } from 'mailparser';
import WebSocket from 'ws';

export const mailUrl = process.env.MAIL_GATEHOUSE_URL;
export const mailAnonKey = process.env.MAIL_ANON_KEY;
export const mailServiceRoleKey = process.env.MAIL_SERVICE_ROLE_KEY;
export const mailDir = process.env.MAIL_DIR;

if (!mailUrl || !mailAnonKey || !mailServiceRoleKey || !mailDir) {
  throw new Error('run through compat/run.sh: MAIL_GATEHOUSE_URL, MAIL_ANON_KEY, MAIL_SERVICE_ROLE_KEY and MAIL_DIR are required');
}

const defaults = { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false };

/** A client of the mail server; `auth` overrides the auth options (e.g. flowType). */
export const mailClient = (auth = {}) =>
  createClient(mailUrl, mailAnonKey, { auth: { ...defaults, ...auth }, realtime: { transport: WebSocket } });
export const mailAdmin = () =>
  createClient(mailUrl, mailServiceRoleKey, { auth: defaults, realtime: { transport: WebSocket } });

/** A Storage that keeps everything in a Map, as a server-side app would give auth-js. */
export function memoryStorage() {
  const items = new Map();
  return {
    items,
    getItem: (key) => (items.has(key) ? items.get(key) : null),
    setItem: (key, value) => { items.set(key, value); },
    removeItem: (key) => { items.delete(key); },
  };
}

let n = 0;
/** A fresh address, in lower case (messagesTo compares lower case). */
export const mailEmail = (tag = 'mail') =>
  `${tag}-${process.pid.toString(36)}-${Date.now().toString(36)}-${(n++).toString(36)}@example.com`;

const parsed = new Map(); // file name → parsed message

/** Every message in MAIL_DIR to `address`, oldest first (the files are named by send time). */
export async function messagesTo(address) {
  let names;
  try {
    names = await readdir(mailDir);
  } catch (err) {
    if (err.code === 'ENOENT') return [];
    throw err;
  }
  // The server writes `.<name>.tmp`, then renames it: a `.eml` is always whole.
  names = names.filter((name) => name.endsWith('.eml') && !name.startsWith('.')).sort();
  const wanted = address.toLowerCase();
  const found = [];
  for (const name of names) {
    if (!parsed.has(name)) parsed.set(name, await parseMessage(name));
    const message = parsed.get(name);
    if (message.to.includes(wanted)) found.push(message);
  }
  return found;
}

async function parseMessage(name) {
  const raw = await readFile(join(mailDir, name));
  const mail = await simpleParser(raw);
  const to = (mail.to?.value ?? []).map((box) => box.address.toLowerCase());
  return { file: name, to, subject: mail.subject, text: mail.text ?? '', html: mail.html || '', headers: mail.headers, ...extract(mail.text ?? '', name) };
}

/**
 * The code and the link of a message's text part. Each message has one link to
 * /auth/v1/verify, and a 6-digit code on a line of its own before it.
 */
export function extract(text, name = 'the message') {
  const links = [...text.matchAll(/https?:\/\/\S+\/auth\/v1\/verify\?\S+/g)];
  if (links.length !== 1) throw new Error(`${name}: expected one verify link in the text, found ${links.length}:\n${text}`);
  const link = links[0][0];
  const codes = [...text.slice(0, links[0].index).matchAll(/^[ \t]*(\d{6})[ \t]*$/gm)];
  if (codes.length === 0) throw new Error(`${name}: no 6-digit code before the link:\n${text}`);
  const url = new URL(link);
  return {
    code: codes[codes.length - 1][1],
    link,
    token: url.searchParams.get('token'),
    type: url.searchParams.get('type'),
    redirectTo: url.searchParams.get('redirect_to'),
  };
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The n-th message (1-based) to `address`, waiting up to `timeoutMs` for it: the server
 * answers first and mails from its outbox after.
 */
export async function waitForMail(address, n = 1, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const messages = await messagesTo(address);
    if (messages.length >= n) return messages[n - 1];
    if (Date.now() > deadline) {
      throw new Error(`no message #${n} to ${address} within ${timeoutMs} ms (found ${messages.length})`);
    }
    await sleep(100);
  }
}

/** How many messages `address` has after waiting `ms` (to show that none came). */
export async function mailCountAfter(address, ms = 2_000) {
  await sleep(ms);
  return (await messagesTo(address)).length;
}

/** What a browser does with an emailed link: GET its page, then submit the page's form. */
export async function followLink(link) {
  const page = await fetch(link);
  if (page.status !== 200) throw new Error(`GET ${link}: ${page.status}`);
  const html = await page.text();
  const form = formOf(html);
  const action = new URL(form.action, link);
  return fetch(action, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(form.fields).toString(),
  });
}

/** The page's POST without the page (a used link's page has no form): token and type
 * from the link. */
export async function postLink(link) {
  const url = new URL(link);
  const fields = { token: url.searchParams.get('token'), type: url.searchParams.get('type') };
  return fetch(new URL('/auth/v1/verify/link', url), {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(fields).toString(),
  });
}

const unescapeHtml = (s) =>
  s.replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');

/** The one form of the link's page: its method, action and hidden fields. */
export function formOf(html) {
  const forms = [...html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/gi)];
  if (forms.length !== 1) throw new Error(`expected one form on the page, found ${forms.length}:\n${html}`);
  const attr = (tag, name) => {
    const m = tag.match(new RegExp(`\\b${name}\\s*=\\s*"([^"]*)"`, 'i'));
    return m ? unescapeHtml(m[1]) : null;
  };
  const [, formTag, body] = forms[0];
  const fields = {};
  for (const [input] of body.matchAll(/<input\b[^>]*>/gi)) {
    const name = attr(input, 'name');
    if (name) fields[name] = attr(input, 'value') ?? '';
  }
  return { method: (attr(formTag, 'method') ?? 'get').toLowerCase(), action: attr(formTag, 'action'), fields };
}
