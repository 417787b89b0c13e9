#!/usr/bin/env node
// Runs tests/rules/cases.json against database.rules.json with targaryen, an independent
// evaluator of Firebase rules, and exits non-zero if any case goes another way than the table
// says. huddle-db runs the same table (crates/rtdb/tests/shipped_rules.rs): two evaluators
// agreeing with the table is the evidence that the rules mean on Firebase what we think.
//
// Usage: node tests/rules/check-with-targaryen.js   (needs `scripts/install-deps.sh test`)
'use strict';

const fs = require('fs');
const path = require('path');

const repo = path.join(__dirname, '..', '..');
const targaryen = require(path.join(repo, 'tests', 'firebase', 'node_modules', 'targaryen'));

const rules = JSON.parse(fs.readFileSync(path.join(repo, 'database.rules.json'), 'utf8'));
const table = JSON.parse(fs.readFileSync(path.join(__dirname, 'cases.json'), 'utf8'));

// "$NOW" and "$NOW-<ms>" become the clock in ms (minus ms), as in the Rust runner.
function withNow(value, now) {
  if (typeof value === 'string') {
    if (value === '$NOW') return now;
    const m = /^\$NOW-(\d+)$/.exec(value);
    return m ? now - Number(m[1]) : value;
  }
  if (Array.isArray(value)) return value.map((v) => withNow(v, now));
  if (value && typeof value === 'object') {
    const out = {};
    for (const [k, v] of Object.entries(value)) out[k] = withNow(v, now);
    return out;
  }
  return value;
}

const wrong = [];
for (const c of table.cases) {
  const now = Date.now();
  const db = targaryen.database(rules, withNow(table.seed, now), now).as(c.auth);
  const at = c.path.replace(/^\/+/, '/');
  const data = withNow(c.data, now);
  let result;
  switch (c.op) {
    case 'read': result = db.read(at, now); break;
    case 'set': result = db.write(at, data, {now}); break;
    case 'update': result = db.update(at, data, now); break;
    default: throw new Error(`case ${c.name}: unknown op ${c.op}`);
  }
  if (result.allowed !== c.allow) {
    wrong.push(`${c.name}: expected ${c.allow ? 'allowed' : 'refused'}, targaryen says ` +
      `${result.allowed ? 'allowed' : 'refused'}\n${result.info.split('\n').slice(0, 40).join('\n')}`);
  }
}

if (wrong.length) {
  console.error(`${wrong.length} of ${table.cases.length} cases went the wrong way:\n\n${wrong.join('\n\n')}`);
  process.exit(1);
}
console.log(`targaryen agrees with all ${table.cases.length} cases`);
