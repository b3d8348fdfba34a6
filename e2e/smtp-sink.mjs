// A tiny SMTP server (RFC 5321) for the e2e suites: it accepts every message on 127.0.0.1
// and keeps it in memory, decoded, for the test to read. No TLS, no AUTH: the client is
// configured with EMAIL_SMTP_IGNORE_TLS=true. Standard library only.

import net from 'node:net';

/** Decodes a quoted-printable body (RFC 2045 §6.7): soft breaks and =XX escapes. */
function decodeQuotedPrintable(text) {
  const bytes = [];
  const s = text.replace(/=\r?\n/g, '');
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '=' && /^[0-9A-Fa-f]{2}$/.test(s.slice(i + 1, i + 3))) {
      bytes.push(parseInt(s.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(...Buffer.from(s[i], 'utf8'));
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

/** Splits a MIME entity into its headers (lower-case names, unfolded) and body. */
function splitEntity(raw) {
  const at = raw.search(/\r?\n\r?\n/);
  const head = at < 0 ? raw : raw.slice(0, at);
  const body = at < 0 ? '' : raw.slice(at).replace(/^\r?\n\r?\n/, '');
  const headers = {};
  for (const line of head.replace(/\r?\n[ \t]+/g, ' ').split(/\r?\n/)) {
    const i = line.indexOf(':');
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  return { headers, body };
}

/** The decoded text of an entity: every leaf part of a multipart, decoded, joined. */
function decodeEntity(raw) {
  const { headers, body } = splitEntity(raw);
  const type = headers['content-type'] || 'text/plain';
  const boundary = /boundary="?([^";]+)"?/i.exec(type);
  if (/^multipart\//i.test(type) && boundary) {
    const parts = body.split(`--${boundary[1]}`).slice(1);
    return parts
      .filter((p) => !p.startsWith('--'))
      .map((p) => decodeEntity(p.replace(/^\r?\n/, '')))
      .join('\n');
  }
  const cte = (headers['content-transfer-encoding'] || '7bit').toLowerCase();
  if (cte === 'base64') return Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('utf8');
  if (cte === 'quoted-printable') return decodeQuotedPrintable(body);
  return body;
}

/** Decodes an RFC 2047 encoded-word header (`=?utf-8?b?...?=`, `=?utf-8?q?...?=`). */
function decodeHeader(value) {
  return (value || '').replace(/=\?([^?]+)\?([bBqQ])\?([^?]*)\?=/g, (_, _cs, enc, text) =>
    enc.toLowerCase() === 'b'
      ? Buffer.from(text, 'base64').toString('utf8')
      : decodeQuotedPrintable(text.replace(/_/g, ' ')),
  );
}

/**
 * Starts the sink on 127.0.0.1:port. Returns {messages, waitFor(pred, ms), close()}; each
 * message is {from, to: [..], subject, headers, text (decoded body), raw}.
 */
export async function startSmtpSink(port) {
  const messages = [];
  const waiters = [];
  const sockets = new Set();
  const deliver = (m) => {
    messages.push(m);
    for (const w of [...waiters]) if (w.pred(m)) { waiters.splice(waiters.indexOf(w), 1); w.resolve(m); }
  };
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => {});
    sock.setEncoding('utf8');
    let buf = '';
    let inData = false;
    let env = { from: null, to: [] };
    const reply = (line) => sock.write(`${line}\r\n`);
    reply('220 gatehouse-e2e-sink ESMTP');
    sock.on('data', (chunk) => {
      buf += chunk;
      for (;;) {
        if (inData) {
          const end = buf.indexOf('\r\n.\r\n');
          if (end < 0) return;
          const data = buf.slice(0, end).replace(/^\.\./gm, '.');
          buf = buf.slice(end + 5);
          inData = false;
          const { headers } = splitEntity(data);
          deliver({ from: env.from, to: env.to, subject: decodeHeader(headers.subject), headers, text: decodeEntity(data), raw: data });
          env = { from: null, to: [] };
          reply('250 2.0.0 queued');
          continue;
        }
        const nl = buf.indexOf('\r\n');
        if (nl < 0) return;
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 2);
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === 'EHLO') { sock.write('250-gatehouse-e2e-sink\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE 10485760\r\n'); }
        else if (verb === 'HELO') reply('250 gatehouse-e2e-sink');
        else if (verb === 'MAIL') { env = { from: (/<([^>]*)>/.exec(line) || [])[1] ?? null, to: [] }; reply('250 2.1.0 ok'); }
        else if (verb === 'RCPT') { env.to.push((/<([^>]*)>/.exec(line) || [])[1]); reply('250 2.1.5 ok'); }
        else if (verb === 'DATA') { inData = true; reply('354 end with <CRLF>.<CRLF>'); }
        else if (verb === 'RSET') { env = { from: null, to: [] }; reply('250 ok'); }
        else if (verb === 'NOOP') reply('250 ok');
        else if (verb === 'QUIT') { reply('221 bye'); sock.end(); return; }
        else reply('502 5.5.2 not implemented');
      }
    });
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  return {
    messages,
    /** The first message (already received or still to come) that `pred` accepts. */
    waitFor(pred, ms = 10000) {
      const found = messages.find(pred);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const w = { pred, resolve };
        waiters.push(w);
        setTimeout(() => {
          const i = waiters.indexOf(w);
          if (i >= 0) { waiters.splice(i, 1); reject(new Error(`no matching mail within ${ms} ms (${messages.length} received)`)); }
        }, ms);
      });
    },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}
