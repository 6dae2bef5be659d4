import { mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTransport } from 'nodemailer';
import { type Network, type OrgSpec, startNetwork } from '../../src/demo/network';

export const ORGS: OrgSpec[] = [
  { domain: 'a.example', users: [{ address: 'alice@a.example', client: 'ssmax', password: 'pw-alice' }, { address: 'dave@a.example', client: 'plain', password: 'pw-dave' }] },
  {
    domain: 'b.example', policy: { default: 'opportunistic' },
    users: [{ address: 'bob@b.example', client: 'ssmax', password: 'pw-bob' }, { address: 'carol@b.example', client: 'plain', password: 'pw-carol' }, { address: 'erin@b.example', client: 'ssmax', password: 'pw-erin' }],
  },
  { domain: 'c.example', users: [{ address: 'frank@c.example', client: 'plain', password: 'pw-frank' }] },
];

export async function network(): Promise<Network> {
  return startNetwork(mkdtempSync(join(tmpdir(), 'ssmax-gw-')), ORGS);
}

/** Plain SMTP (submission with AUTH when `auth` is given, else as a peer MTA). */
export async function smtp(port: number, from: string, to: string[], raw: Buffer | string, auth?: { user: string; pass: string }): Promise<string> {
  const t = createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true, ...(auth ? { auth } : {}), connectionTimeout: 10000, socketTimeout: 30000 });
  try {
    const r = await t.sendMail({ envelope: { from, to }, raw });
    return r.response;
  } catch (err) {
    return (err as { response?: string }).response ?? `ERROR ${(err as Error).message}`;
  } finally {
    t.close();
  }
}

export async function waitFor(cond: () => boolean, ms = 20000, explain: () => string = () => ''): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting\n${explain()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Every file under `dir`, with its bytes (for the no-plaintext-at-rest check). */
export function filesUnder(dir: string): { path: string; bytes: Buffer }[] {
  const out: { path: string; bytes: Buffer }[] = [];
  const walk = (d: string) => {
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      return;
    }
    for (const n of names) {
      const p = join(d, n);
      const st = statSync(p, { throwIfNoEntry: false });
      if (!st) continue;
      if (st.isDirectory()) walk(p);
      else if (st.isFile()) out.push({ path: p, bytes: readFileSync(p) });
    }
  };
  walk(dir);
  return out;
}
