/**
 * No plaintext on disk (issue 17): clamd writes every INSTREAM it scans to a
 * temporary file (and unpacks archives beside it). The clamd the project
 * starts keeps them on a tmpfs; the gateway's start check refuses a
 * configured clamd whose settings are unknown or put them on a disk. Shown with
 * a real clamd and inotify watches: on a disk folder the scanned mail does
 * appear (so the watch can fail), with the project's settings nothing does.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../src/demo/haraka';
import { ClamdClient } from '../../src/inspect/clamd';
import { type ClamdProcess, EICAR, TEST_MARKER, startClamd } from '../../src/inspect/clamd-process';
import { CLAMD_STREAM_MAX_DEFAULT, clamdSettingsFindings, memoryFileSystem, parseClamdSize } from '../../src/inspect/clamd-settings';
import { zip } from '../support/documents';
import { watchDuring } from '../support/watch-dirs';

jest.setTimeout(120000);

const marked = Buffer.from(
  `From: x@outside.example\r\nTo: bob@b.example\r\nSubject: marked\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename="m.txt"\r\nContent-Transfer-Encoding: base64\r\n\r\n${Buffer.from(`some text ${TEST_MARKER} more text`).toString('base64')}\r\n--b--\r\n`,
);

const stopping: ClamdProcess[] = [];
afterAll(async () => {
  for (const c of stopping) await c.stop();
});

async function clamdWith(opts: Parameters<typeof startClamd>[2]): Promise<{ clamd: ClamdProcess; client: ClamdClient; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'ssmax-clamd-temp-'));
  const port = await freePort();
  const clamd = await startClamd(dir, port, opts);
  stopping.push(clamd);
  return { clamd, dir, client: new ClamdClient({ host: '127.0.0.1', port, timeoutMs: 10000 }) };
}

test('control: with its temporary folder on a disk, clamd writes the scanned mail there (the watch sees it)', async () => {
  const diskTemp = mkdtempSync(join(tmpdir(), 'ssmax-clamd-disk-'));
  expect(memoryFileSystem(diskTemp)).toBeUndefined();
  const { client, clamd } = await clamdWith({ tempRoot: diskTemp, allowDiskTemp: true });
  expect(clamdSettingsFindings(clamd.conf)).toEqual({
    plaintextOnDisk: [expect.stringMatching(/TemporaryDirectory .* is not on a tmpfs/)],
    warnings: [],
    streamMaxBytes: 100 * 1024 * 1024,
  });
  const { result, seen } = await watchDuring([{ dir: diskTemp, recursive: true }], Buffer.from(TEST_MARKER), () => client.scan(marked));
  expect(result).toEqual({ infected: true, signature: 'Ssmax.Test.Marker.UNOFFICIAL' });
  expect(seen.entries.some((p) => /clamav-/.test(p))).toBe(true); // clamd's temporary names
});

test("the project's clamd: temporary files on a tmpfs, removed; nothing in the disk folders during the scan of a marked message", async () => {
  const { client, clamd, dir } = await clamdWith({});
  expect(memoryFileSystem(clamd.tempDir)).toBe('tmpfs');
  expect(clamdSettingsFindings(clamd.conf)).toEqual({ plaintextOnDisk: [], warnings: [], streamMaxBytes: 100 * 1024 * 1024 });
  const watched = [
    { dir: tmpdir(), recursive: false },
    { dir, recursive: true },
    { dir: clamd.tempDir, recursive: true },
  ];
  const { result, seen } = await watchDuring(watched, Buffer.from(TEST_MARKER), () => client.scan(marked));
  expect(result).toEqual({ infected: true, signature: 'Ssmax.Test.Marker.UNOFFICIAL' });
  // /tmp is shared with other programs: there, clamd's temporary names (clamav-*) count; beside clamd, everything but its log
  // line ("stream: Ssmax.Test.Marker.UNOFFICIAL FOUND")
  expect(seen.entries.filter((p) => p.startsWith(`${tmpdir()}/clamav-`))).toEqual([]);
  expect(seen.entries.filter((p) => p.startsWith(`${dir}/`) && p !== join(dir, 'clamd.log'))).toEqual([]);
  expect(seen.withMarker.filter((p) => !p.startsWith(clamd.tempDir))).toEqual([]);
  expect(seen.entries.some((p) => p.startsWith(clamd.tempDir))).toBe(true); // the scan did use temporary files: in memory
});

test('clamd scans inside archives here: EICAR in a zip, and in a zip inside a zip', async () => {
  const { client } = await clamdWith({});
  expect(await client.scan(zip({ 'readme.txt': 'hello', 'eicar.com': EICAR }))).toEqual({
    infected: true,
    signature: 'Eicar-Test-Signature.UNOFFICIAL',
  });
  expect(await client.scan(zip({ 'inner.zip': zip({ 'eicar.com': EICAR }) }))).toEqual({
    infected: true,
    signature: 'Eicar-Test-Signature.UNOFFICIAL',
  });
  expect(await client.scan(zip({ 'readme.txt': 'hello' }))).toEqual({ infected: false });
});

test('the start check: settings unknown, unreadable, or without TemporaryDirectory are plaintext on disk (refused: test/inspect/config.test.ts)', () => {
  expect(clamdSettingsFindings(undefined).plaintextOnDisk).toEqual([
    expect.stringMatching(/clamd settings unknown: \[av\] clamd_config is not set/),
  ]);
  expect(clamdSettingsFindings('/nonexistent/clamd.conf').plaintextOnDisk).toEqual([expect.stringMatching(/cannot read .*ENOENT/)]);
  const dir = mkdtempSync(join(tmpdir(), 'ssmax-clamd-conf-'));
  writeFileSync(join(dir, 'clamd.conf'), '# Debian default\nLocalSocket /run/clamav/clamd.ctl\nLeaveTemporaryFiles yes\n');
  expect(clamdSettingsFindings(join(dir, 'clamd.conf'))).toEqual({
    plaintextOnDisk: [expect.stringMatching(/has no TemporaryDirectory/), expect.stringMatching(/LeaveTemporaryFiles yes/)],
    warnings: [expect.stringMatching(/no AlertExceedsMax yes/)],
    streamMaxBytes: CLAMD_STREAM_MAX_DEFAULT,
  });
  writeFileSync(join(dir, 'clamd.conf'), 'TemporaryDirectory /dev/shm\nAlertExceedsMax yes\n#TemporaryDirectory /tmp\n');
  expect(clamdSettingsFindings(join(dir, 'clamd.conf'))).toEqual({
    plaintextOnDisk: [],
    warnings: [],
    streamMaxBytes: CLAMD_STREAM_MAX_DEFAULT,
  });
});

test("StreamMaxLength is read in clamd.conf's notation (bytes, K, M); one it cannot read is a warning, and clamd's own answer then tells", () => {
  const dir = mkdtempSync(join(tmpdir(), 'ssmax-clamd-conf-'));
  const findings = (line: string) => {
    writeFileSync(join(dir, 'clamd.conf'), `TemporaryDirectory /dev/shm\nAlertExceedsMax yes\n${line}\n`);
    return clamdSettingsFindings(join(dir, 'clamd.conf'));
  };
  expect(findings('StreamMaxLength 25M').streamMaxBytes).toBe(25 * 1024 * 1024);
  expect(findings('StreamMaxLength 1024k').streamMaxBytes).toBe(1024 * 1024);
  expect(findings('StreamMaxLength 5000').streamMaxBytes).toBe(5000);
  expect(findings('#StreamMaxLength 1M').streamMaxBytes).toBe(CLAMD_STREAM_MAX_DEFAULT);
  const odd = findings('StreamMaxLength lots');
  expect(odd.streamMaxBytes).toBeUndefined();
  expect(odd.warnings).toEqual([expect.stringMatching(/StreamMaxLength lots is not a size/)]);
  expect(parseClamdSize('2G')).toBe(2 * 1024 ** 3);
  expect(parseClamdSize('25M # the MTA limit')).toBe(25 * 1024 * 1024);
  expect(parseClamdSize('010M')).toBeUndefined(); // clamd may read a leading zero as octal
  expect(parseClamdSize('25MB')).toBeUndefined();
});
