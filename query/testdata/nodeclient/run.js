// Runs a table of Data API requests through Google's Node client
// (@google-analytics/data) against an Avila server, and prints one outcome
// per request as JSON: {"response": …} in the client's own JSON form
// (message.toJSON()), or {"status", "message", "fields"} for an error.
//
// usage: node run.js grpc|rest PORT KEY CASES.json
//
// grpc: the client's default transport, gRPC, over h2c (insecure channel
// credentials). rest: its REST fallback (fallback: 'rest'), which sends
// enums as numbers ($alt=json;enum-encoding=int), over plain HTTP. Only
// the endpoint changes from what a GA4 user writes.
'use strict';

const fs = require('fs');
const {BetaAnalyticsDataClient, v1alpha} = require('@google-analytics/data');
const grpc = require('@grpc/grpc-js');
const {OAuth2Client} = require('google-auth-library');

async function main() {
  const [mode, port, key, file] = process.argv.slice(2);
  const cases = JSON.parse(fs.readFileSync(file, 'utf8'));
  // The API key travels as a bearer token, as Avila expects it.
  const auth = new OAuth2Client();
  auth.setCredentials({access_token: key, expiry_date: Date.now() + 3600e3});
  const opts = {apiEndpoint: '127.0.0.1', port: Number(port), authClient: auth};
  if (mode === 'grpc') {
    opts.sslCreds = grpc.credentials.createInsecure();
  } else if (mode === 'rest') {
    opts.fallback = 'rest';
    opts.protocol = 'http';
  } else {
    throw new Error('mode must be grpc or rest, got ' + mode);
  }
  const beta = new BetaAnalyticsDataClient(opts);
  const alpha = new v1alpha.AlphaAnalyticsDataClient(opts);
  // An insecure gRPC channel carries no call credentials: the key goes as
  // request metadata (the REST fallback sends it as a header too).
  const callOpts = {otherArgs: {headers: {authorization: 'Bearer ' + key}}, maxRetries: 0};
  const out = [];
  for (const c of cases) {
    const client = c.method === 'runFunnelReport' ? alpha : beta;
    try {
      const [resp] = await client[c.method](nodeForm(c.request), callOpts);
      out.push({response: typeof resp.toJSON === 'function' ? resp.toJSON() : resp});
    } catch (e) {
      out.push(errorOutcome(e));
    }
  }
  await beta.close();
  await alpha.close();
  process.stdout.write(JSON.stringify(out));
}

// nodeForm is a request in the Node client's own form: the same as
// Google's JSON but for durations, which it takes as {seconds, nanos}.
function nodeForm(v) {
  if (Array.isArray(v)) {
    return v.map(nodeForm);
  }
  if (v === null || typeof v !== 'object') {
    return v;
  }
  const out = {};
  for (const [k, x] of Object.entries(v)) {
    const m = typeof x === 'string' && k === 'withinDurationFromPriorStep' && /^(\d+)(\.\d+)?s$/.exec(x);
    out[k] = m ? {seconds: Number(m[1]), nanos: m[2] ? Math.round(Number(m[2]) * 1e9) : 0} : nodeForm(x);
  }
  return out;
}

function errorOutcome(e) {
  const status = Object.keys(grpc.status).find(k => grpc.status[k] === e.code) || String(e.code);
  const fields = [];
  for (const d of e.statusDetails || []) {
    for (const v of (d && d.fieldViolations) || []) {
      fields.push(v.field || '');
    }
  }
  const message = typeof e.details === 'string' && e.details ? e.details : e.message;
  return {status, message, fields};
}

main().catch(e => {
  console.error(e);
  process.exit(1);
});
