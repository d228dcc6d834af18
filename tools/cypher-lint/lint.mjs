#!/usr/bin/env node
// Checks Cypher statements against Neo4j's own Cypher 5 grammar and semantic analysis.
//
// Neo4j's language tooling (@neo4j-cypher/language-support) bundles the ANTLR grammar of
// Cypher and Neo4j's Java front end (semantic analysis) compiled to JavaScript, so a
// statement can be checked the way a Neo4j 5 server would check it, without a server.
//
// stdin:  JSON array of {"name": str, "text": str, "parameters"?: [str]}
//         "parameters", when present, are the only parameters declared for that statement
//         (used for report files whose header names their parameters); otherwise every
//         $param the parser finds in the text is declared.
// stdout: JSON array of {"name", "errors": [diag], "warnings": [diag], "found_parameters"},
//         in input order; diag = {"message", "line", "column", "severity"} with 1-based
//         line and column; found_parameters = the $params the parser found in the text.
//
// Severities: only LSP "error" diagnostics (syntax errors, semantic errors such as undefined
// variables, unknown functions or procedures, undeclared parameters, plus the checks added
// here) go to "errors" and fail. Everything else ("warning": deprecations and other Neo4j
// notifications; "information"; "hint") goes to "warnings" and does not fail.
//
// Exit status: 0 no statement has errors, 1 some statement has errors (stdout still holds
// the full result), 2 the checker could not run (bad input, package missing or not the
// pinned version, or the self-check failed); the reason is on stderr.
//
// Speed: Neo4j's semantic analysis takes 0.1-0.3 s of CPU per statement. Results are cached
// in node_modules/.cache/cypher-lint/, keyed by the statement, its declared parameters, the
// installed package version and this file's source (so `npm ci` or an edit here clears it;
// CYPHER_LINT_CACHE=0 bypasses it). Statements not in the cache are split over worker
// threads (one per CPU, at most 4; CYPHER_LINT_JOBS=N overrides).

import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

const INSTALL_HINT =
  'run `make test` (it runs `npm ci --prefix tools/cypher-lint`) to install the pinned ' +
  '@neo4j-cypher/language-support';
const PKG = '@neo4j-cypher/language-support';
const VERSION = 'CYPHER 5';
// Neo4j's own procedure namespaces; anything else (apoc.*, gds.*) is a plugin.
const BUILTIN_PROCEDURE_NAMESPACES = ['db.', 'dbms.', 'tx.'];
const SEVERITY = { 1: 'error', 2: 'warning', 3: 'information', 4: 'hint' };

class Fatal extends Error {}

function die(message) {
  throw new Fatal(message);
}

function checkInstalledVersion() {
  const here = new URL('./', import.meta.url);
  const wanted = JSON.parse(readFileSync(new URL('package.json', here), 'utf8')).dependencies[PKG];
  let installed;
  try {
    installed = JSON.parse(
      readFileSync(new URL(`node_modules/${PKG}/package.json`, here), 'utf8'),
    ).version;
  } catch {
    die(`${PKG} is not installed; ${INSTALL_HINT}`);
  }
  if (installed !== wanted) {
    die(`${PKG} ${installed} is installed but ${wanted} is pinned; ${INSTALL_HINT}`);
  }
  return installed;
}

const CACHE_DIR = new URL('./node_modules/.cache/cypher-lint/', import.meta.url);

function cacheKey(salt, item) {
  const parameters = Array.isArray(item.parameters) ? item.parameters : null;
  return createHash('sha256')
    .update(salt)
    .update('\0')
    .update(JSON.stringify([item.text ?? null, parameters]))
    .digest('hex');
}

function readCache(key) {
  try {
    return JSON.parse(readFileSync(new URL(`${key}.json`, CACHE_DIR), 'utf8'));
  } catch {
    return undefined;
  }
}

function writeCache(key, result) {
  const { name: _, ...entry } = result;
  try {
    mkdirSync(CACHE_DIR, { recursive: true });
    const tmp = new URL(`${key}.${process.pid}.tmp`, CACHE_DIR);
    writeFileSync(tmp, JSON.stringify(entry));
    renameSync(tmp, new URL(`${key}.json`, CACHE_DIR));
  } catch {
    // A cache that cannot be written only costs time.
  }
}

async function loadLanguageSupport() {
  try {
    return await import(PKG);
  } catch (err) {
    die(`cannot load ${PKG} (${err.message}); ${INSTALL_HINT}`);
  }
}

// Built-in functions and procedures of a Neo4j 5 server. The package ships a dump of a real
// server's SHOW FUNCTIONS / SHOW PROCEDURES (with APOC and GDS installed) as testData; only
// Neo4j's own entries are declared, so a misspelt function or an APOC/GDS call is an error.
function builtinSchema(ls) {
  const functions = ls.testData?.mockSchema?.functions?.[VERSION];
  const procedures = ls.testData?.mockSchema?.procedures?.[VERSION];
  if (!functions || !procedures) {
    die(`${PKG} no longer ships testData.mockSchema for ${VERSION}; update lint.mjs`);
  }
  const pick = (registry, keep) =>
    Object.fromEntries(Object.entries(registry).filter(([name, entry]) => keep(name, entry)));
  return {
    functions: { [VERSION]: pick(functions, (_, fn) => fn.isBuiltIn === true) },
    procedures: {
      [VERSION]: pick(procedures, (name) =>
        BUILTIN_PROCEDURE_NAMESPACES.some((ns) => name.startsWith(ns)),
      ),
    },
  };
}

function diag(message, line, column, severity = 'error') {
  return { message, line, column, severity };
}

// Strip leading whitespace and comments, to look at what a statement starts with.
function stripLeadingComments(text) {
  let rest = text;
  for (;;) {
    const trimmed = rest.replace(/^\s+/, '');
    if (trimmed.startsWith('//')) {
      const nl = trimmed.indexOf('\n');
      rest = nl < 0 ? '' : trimmed.slice(nl + 1);
    } else if (trimmed.startsWith('/*')) {
      const end = trimmed.indexOf('*/');
      rest = end < 0 ? '' : trimmed.slice(end + 2);
    } else {
      return trimmed;
    }
  }
}

function isBlank(statement) {
  return stripLeadingComments(statement).replace(/^;/, '').trim() === '';
}

function lintOne(ls, builtins, item) {
  const { name, text } = item;
  const errors = [];
  const warnings = [];
  if (typeof text !== 'string' || isBlank(text)) {
    return { name, errors: [diag('empty statement', 1, 1)], warnings, found_parameters: [] };
  }

  // Checks a Neo4j 5 server makes that the language service leaves out.
  const statements = ls.parseStatementsStrs(text).filter((s) => !isBlank(s));
  if (statements.length > 1) {
    errors.push(
      diag(
        `Expected exactly one statement per query but got: ${statements.length} ` +
          '(a driver runs one statement per call)',
        1,
        1,
      ),
    );
  }
  const version = /^CYPHER\s+(\d+)\b/i.exec(stripLeadingComments(text));
  if (version && version[1] !== '5') {
    errors.push(diag(`CYPHER ${version[1]} is not Cypher 5; Neo4j 5 is the target`, 1, 1));
  }

  const found = ls.parseParameters(text, false);
  const declared = Array.isArray(item.parameters) ? item.parameters : found;
  const schema = {
    defaultLanguage: VERSION,
    parameters: Object.fromEntries(declared.map((p) => [p, null])),
    ...builtins,
  };
  const { diagnostics } = ls.lintCypherQuery(text, schema, { consoleCommandsEnabled: false });
  for (const d of diagnostics) {
    const severity = SEVERITY[d.severity ?? 1] ?? 'error';
    const entry = diag(d.message, d.range.start.line + 1, d.range.start.character + 1, severity);
    (severity === 'error' ? errors : warnings).push(entry);
  }
  return { name, errors, warnings, found_parameters: found };
}

// The language service swallows exceptions of the semantic analysis and then reports
// nothing. Make sure both the parser and the semantic analysis really run.
function selfCheck(ls, builtins) {
  const probes = [
    ['MATCH (n RETURN n', 'Invalid input'],
    ['MATCH (n) RETURN m', 'Variable `m` not defined'],
  ];
  for (const [text, expected] of probes) {
    const { errors } = lintOne(ls, builtins, { name: 'self-check', text });
    if (!errors.some((e) => e.message.includes(expected))) {
      die(
        `self-check failed: ${JSON.stringify(text)} gave ${JSON.stringify(errors)}, ` +
          `expected an error containing ${JSON.stringify(expected)}`,
      );
    }
  }
}

// Lint items in this thread: load the package, self-check, then lint.
async function lintHere(items) {
  const ls = await loadLanguageSupport();
  const builtins = builtinSchema(ls);
  selfCheck(ls, builtins);
  return items.map((item) => lintOne(ls, builtins, item));
}

function jobCount(items) {
  const wanted = Number.parseInt(process.env.CYPHER_LINT_JOBS ?? '', 10);
  const cap = wanted > 0 ? wanted : Math.min(availableParallelism(), 4);
  // Each thread pays about a second to load and warm up; keep ~10 statements per thread.
  return Math.max(1, Math.min(cap, Math.ceil(items.length / 10)));
}

function lintInWorker(items) {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL(import.meta.url), { workerData: { items } });
    worker.once('message', (msg) => (msg.fatal ? reject(new Fatal(msg.fatal)) : resolve(msg)));
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Fatal(`worker thread exited with ${code}`)));
  });
}

async function lintAll(items) {
  const jobs = jobCount(items);
  if (jobs === 1) return lintHere(items);
  // Deal the items round robin so that long statements spread over the threads.
  const chunks = Array.from({ length: jobs }, (_, j) => items.filter((_, i) => i % jobs === j));
  const parts = await Promise.all(chunks.map(lintInWorker));
  return items.map((_, i) => parts[i % jobs][Math.floor(i / jobs)]);
}

async function main() {
  const installed = checkInstalledVersion();
  let items;
  try {
    items = JSON.parse(readFileSync(0, 'utf8'));
  } catch (err) {
    die(`stdin is not JSON: ${err.message}`);
  }
  if (!Array.isArray(items) || !items.every((i) => i && typeof i.name === 'string')) {
    die('stdin must be a JSON array of {"name": str, "text": str, "parameters"?: [str]}');
  }
  const useCache = process.env.CYPHER_LINT_CACHE !== '0';
  const salt = `${installed}\0${readFileSync(new URL(import.meta.url), 'utf8')}`;
  const keys = items.map((item) => cacheKey(salt, item));
  const results = items.map((item, i) => {
    const hit = useCache ? readCache(keys[i]) : undefined;
    return hit && { name: item.name, ...hit };
  });
  const todo = results.flatMap((r, i) => (r ? [] : [i]));
  if (todo.length > 0) {
    const fresh = await lintAll(todo.map((i) => items[i]));
    todo.forEach((i, k) => {
      results[i] = fresh[k];
      if (useCache) writeCache(keys[i], fresh[k]);
    });
  }
  process.stdout.write(JSON.stringify(results, null, 1) + '\n');
  process.exitCode = results.some((r) => r.errors.length > 0) ? 1 : 0;
}

if (isMainThread) {
  try {
    await main();
  } catch (err) {
    process.stderr.write(`cypher-lint: ${err instanceof Fatal ? err.message : err.stack}\n`);
    process.exitCode = 2;
  }
} else {
  try {
    parentPort.postMessage(await lintHere(workerData.items));
  } catch (err) {
    parentPort.postMessage({ fatal: err instanceof Fatal ? err.message : err.stack });
  }
}
