// The Node.js baseline of issue 3: the webhook receiver a Node service
// writes from Stripe's documentation, with express and the stripe SDK and
// no storage. express.raw keeps the body as bytes, constructEvent checks the
// Stripe-Signature (HMAC-SHA256, constant-time compare, 300 s tolerance)
// and parses the JSON, and the handler answers 200.
//
// Usage: node sidestream-bench-node.js --secret=whsec_... --modules=DIR
//   DIR holds node_modules with express and stripe (scripts/bench installs
//   pinned versions from the npm registry into .cache/bench-node).
// Prints "ready http=HOST:PORT" when listening; runs until killed.
'use strict';

function flag(name, fallback) {
  const prefix = `--${name}=`;
  const arg = process.argv.find((a) => a.startsWith(prefix));
  return arg === undefined ? fallback : arg.slice(prefix.length);
}

const secret = flag('secret', '');
const modules = flag('modules', '');
const [host, port] = flag('listen', '127.0.0.1:0').split(':');
if (secret === '' || modules === '') {
  console.error('sidestream-bench-node: --secret and --modules are required');
  process.exit(2);
}
const load = (name) => require(require.resolve(name, { paths: [modules] }));
const express = load('express');
// Verifying webhooks makes no API call; the key is never used.
const stripe = load('stripe')('sk_test_bench_unused');

const app = express();
app.post('/webhook', express.raw({ type: 'application/json', limit: '1mb' }), (req, res) => {
  let event;
  try {
    event = stripe.webhooks.constructEvent(req.body, req.headers['stripe-signature'], secret);
  } catch (err) {
    res.status(400).send(`Webhook Error: ${err.message}`);
    return;
  }
  res.json({ received: true, id: event.id });
});

const server = app.listen(Number(port), host, () => {
  const address = server.address();
  console.log(`ready http=${address.address}:${address.port}`);
});
server.keepAliveTimeout = 60000;
