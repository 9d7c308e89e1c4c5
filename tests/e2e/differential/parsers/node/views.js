// Node runtime of test_parsers.py: JSON lines in (one request each), JSON lines out (protocol in
// ../py_views.py). Views:
//  node.stdlib      JSON.parse (JSON bodies) / qs.parse (form bodies, pinned npm qs); query: qs.parse
//  node.body-parser Express body-parser json() + urlencoded({extended: true}) (inflates
//                   Content-Encoding gzip/deflate/br) on a synthetic request stream; query: qs.parse
//                   (Express's default "extended" query parser)
'use strict';
const qs = require('qs');
const bodyParser = require('body-parser');
const readline = require('readline');
const { Readable } = require('stream');

function typed(v) {
  if (v === null) return ['', 'null'];
  if (typeof v === 'boolean') return [v ? 'true' : 'false', 'bool'];
  if (typeof v === 'string') return [v, 'string'];
  if (typeof v === 'number') return [Object.is(v, -0) ? '-0' : String(v), 'number'];
  if (Array.isArray(v)) return [JSON.stringify(v), 'array'];
  if (typeof v === 'undefined') return ['', 'undefined'];
  return [JSON.stringify(v), 'object'];
}

function header(req, name) {
  for (const [k, v] of req.headers) if (k.toLowerCase() === name) return v;
  return undefined;
}

function kindOf(req) {
  const ct = (header(req, 'content-type') || '').toLowerCase();
  if (ct.includes('json')) return 'json';
  if (ct.includes('x-www-form-urlencoded')) return 'form';
  return 'other';
}

function queryOf(req) {
  const i = req.path.indexOf('?');
  return i < 0 ? '' : req.path.slice(i + 1);
}

function flatQuery(q) {
  return Object.keys(q).map((k) => [k, typed(q[k])[0]]);
}

function viewOf(obj, keys) {
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
    throw new Error('top-level ' + (Array.isArray(obj) ? 'array' : typeof obj));
  }
  const params = Object.keys(obj).map((k) => [k, ...typed(obj[k])]);
  const get = {};
  for (const k of keys) get[k] = Object.prototype.hasOwnProperty.call(obj, k) ? typed(obj[k]) : null;
  return { params, get };
}

function stdlibView(req, body) {
  const kind = kindOf(req);
  let obj;
  if (kind === 'json') obj = JSON.parse(body.toString('utf8'));
  else if (kind === 'form') obj = qs.parse(body.toString('utf8'));
  else throw new Error('no body parser for this content type');
  return { ...viewOf(obj, req.keys), query: flatQuery(qs.parse(queryOf(req))) };
}

const jsonMw = bodyParser.json({ limit: '1mb' });
const formMw = bodyParser.urlencoded({ extended: true, limit: '1mb' });

function bodyParserView(req, body) {
  return new Promise((resolve) => {
    const stream = Readable.from(body.length ? [body] : []);
    const headers = {};
    for (const [k, v] of req.headers) {
      const n = k.toLowerCase();
      headers[n] = headers[n] === undefined ? v : headers[n] + ', ' + v;
    }
    delete headers['transfer-encoding'];
    headers['content-length'] = String(body.length);
    stream.headers = headers;
    stream.method = req.method;
    stream.url = req.path;
    const done = (err) => {
      if (err) return resolve({ error: 'body-parser: ' + (err.type || '') + ' ' + err.message });
      if (stream.body === undefined) return resolve({ error: 'body-parser: no parser matched' });
      try {
        resolve({ ...viewOf(stream.body, req.keys), query: flatQuery(qs.parse(queryOf(req))) });
      } catch (e) {
        resolve({ error: String(e.message) });
      }
    };
    // Express runs both middlewares in order; each skips a request whose type it does not parse.
    jsonMw(stream, {}, (err) => (err ? done(err) : stream._body ? done() : formMw(stream, {}, done)));
  });
}

async function main() {
  const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of rl) {
    if (!line.trim()) continue;
    const req = JSON.parse(line);
    const body = Buffer.from(req.body, 'base64');
    const views = {};
    try { views['node.stdlib'] = stdlibView(req, body); } catch (e) { views['node.stdlib'] = { error: String(e.message).slice(0, 300) }; }
    views['node.body-parser'] = await bodyParserView(req, body);
    process.stdout.write(JSON.stringify({ id: req.id, views }) + '\n');
  }
}

main();
