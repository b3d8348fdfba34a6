// The application behind nginx in the forward-auth suite (e2e/forward-auth.mjs): answers every
// request with the method, the raw path and the headers it received, as JSON, so the suite
// sees exactly what nginx passed on after gatehouse's /auth/verify said yes.
//   node echo-upstream.mjs PORT      (listens on 127.0.0.1:PORT until SIGTERM)

import http from 'node:http';

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  console.error('usage: node echo-upstream.mjs PORT');
  process.exit(2);
}

const server = http.createServer((req, res) => {
  // Bounded: the suite sends no bodies; anything sent is drained and dropped.
  req.resume();
  const body = JSON.stringify({
    method: req.method,
    path: req.url,
    // rawHeaders keeps every header as sent, repeated ones too (an object would merge them).
    headers: req.rawHeaders.reduce((acc, v, i, all) => {
      if (i % 2 === 0) acc.push([v, all[i + 1]]);
      return acc;
    }, []),
  });
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
});
server.headersTimeout = 10000;
server.requestTimeout = 10000;
server.listen(port, '127.0.0.1', () => console.log(`echo upstream on 127.0.0.1:${port}`));
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => server.close(() => process.exit(0)));
