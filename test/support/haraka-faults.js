'use strict';
// Test-only Haraka plugin (fault injection, never shipped): listed before ssmax in
// config/plugins by the tests that need it. While the file "fail-queue-once" exists in
// the Haraka folder, the next attempt to queue a copy for a recipient at the domain it
// names fails (as a full disk would), and the file is removed: one failure, then normal.
const fs = require('node:fs');
const path = require('node:path');

exports.register = function () {
  const outbound = this.haraka_require('outbound');
  const flag = path.join(process.env.HARAKA || process.cwd(), 'fail-queue-once');
  const original = outbound.send_trans_email;
  const logerror = (msg) => this.logerror(msg);
  // the gateway queues its copies through send_trans_email (src/gateway/outbound-queue.ts)
  outbound.send_trans_email = function (transaction, next) {
    let domain = '';
    try {
      domain = fs.readFileSync(flag, 'utf8').trim();
    } catch {
      domain = '';
    }
    const list = (transaction.rcpt_to || []).map((r) => `${r.user}@${r.host}`);
    if (domain && list.some((r) => r.toLowerCase().endsWith(`@${domain}`))) {
      fs.rmSync(flag, { force: true });
      logerror(`haraka-faults: injected queue failure for ${list.join(', ')}`);
      return next(903, 'injected queue failure');
    }
    return original.call(this, transaction, next);
  };
};
