// Clients as an app written for Supabase makes them, pointed at the gatehouse that
// run.sh started (GATEHOUSE_URL, ANON_KEY, SERVICE_ROLE_KEY).
import { createClient } from '@supabase/supabase-js';
import WebSocket from 'ws';

export const url = process.env.GATEHOUSE_URL;
export const anonKey = process.env.ANON_KEY;
export const serviceRoleKey = process.env.SERVICE_ROLE_KEY;
export const graceMs = Number(process.env.REUSE_INTERVAL_MS ?? 1000);
export const reauthWindowMs = Number(process.env.REAUTH_WINDOW_MS ?? 5000);
export const PASSWORD = 'quartz-Lantern-47';

if (!url || !anonKey || !serviceRoleKey) {
  throw new Error('run through compat/run.sh: GATEHOUSE_URL, ANON_KEY and SERVICE_ROLE_KEY are required');
}

const options = {
  auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
  // Node 20 has no global WebSocket; supabase-js ≥ 2.1xx wants one.
  realtime: { transport: WebSocket },
};

export const client = () => createClient(url, anonKey, options);
export const admin = () => createClient(url, serviceRoleKey, options);

let n = 0;
export const email = (tag = 'user') => `${tag}-${process.pid}-${Date.now()}-${n++}@example.com`;

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Signs up a fresh user and returns its client (signed in) and email. */
export async function signedUp(data = {}) {
  const supabase = client();
  const address = email();
  const { data: result, error } = await supabase.auth.signUp({ email: address, password: PASSWORD, options: { data } });
  if (error) throw error;
  if (!result.session) throw new Error('signUp returned no session');
  return { supabase, email: address, session: result.session, user: result.user };
}
