/**
 * The README's fixture recipes, run as written there: ava, pytest and Go `testing`, each worker
 * mounting its own host with `apsim mount --daemon` and resetting it before each test. They find
 * `apsim` on the PATH, as after `npm install -g`.
 */
import test, { type ExecutionContext } from 'ava'
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { ensureClients } from '../helpers/clients.js'
import { CLI, requireFuse, run, type ShResult } from '../helpers/mount.js'
import { readmeBlock } from '../helpers/readme.js'

const ROOT = fileURLToPath(new URL('../../../', import.meta.url))

/** A tmp project dir with the given files, `apsim` on the PATH; removed afterwards. */
async function inProject (t: ExecutionContext, files: Record<string, string>, cmd: string[]): Promise<ShResult> {
  requireFuse()
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'apsim-recipe-'))
  try {
    const bin = path.join(tmp, '.bin')
    mkdirSync(bin)
    writeFileSync(path.join(bin, 'apsim'), `#!/bin/sh\nexec "${process.execPath}" "${CLI}" "$@"\n`)
    chmodSync(path.join(bin, 'apsim'), 0o755)
    for (const [name, text] of Object.entries(files)) {
      mkdirSync(path.dirname(path.join(tmp, name)), { recursive: true })
      writeFileSync(path.join(tmp, name), text)
    }
    symlinkSync(path.join(ROOT, 'node_modules'), path.join(tmp, 'node_modules'))
    const runDir = path.join(tmp, '.run') // the recipe's own /run/apsim
    const r = await run(cmd[0], cmd.slice(1), {
      cwd: tmp,
      env: { ...process.env, APSIM_RUN_DIR: runDir, PATH: `${bin}:${process.env.PATH ?? ''}`, GOTOOLCHAIN: 'local', GOFLAGS: '-count=1' }
    })
    const mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(l => l.includes(tmp))
    t.deepEqual(mounts, [], 'every worker unmounted its host')
    t.deepEqual(existsSync(runDir) ? readdirSync(runDir) : [], [], 'no runtime record or log file left')
    return r
  } finally {
    rmSync(tmp, { recursive: true, force: true })
  }
}

test('the ava recipe: two test files, two workers, two hosts, reset before each test', async t => {
  const spec = readmeBlock('fixture-ava-test')
  const r = await inProject(t, {
    'package.json': JSON.stringify({ type: 'module' }),
    'test/_apsim.js': readmeBlock('fixture-ava'),
    'test/apmask.test.js': spec,
    'test/apmask-again.test.js': spec
  }, [process.execPath, path.join(ROOT, 'node_modules/ava/entrypoints/cli.mjs'), '--concurrency', '2'])
  t.is(r.code, 0, r.stdout + r.stderr)
  t.regex(r.stdout + r.stderr, /4 tests passed/)
})

test('the pytest recipe', async t => {
  await ensureClients(t)
  const r = await inProject(t, {
    'conftest.py': readmeBlock('fixture-pytest'),
    'test_apmask.py': readmeBlock('fixture-pytest-test')
  }, ['/usr/bin/python3', '-m', 'pytest', '-q', '-p', 'no:cacheprovider'])
  t.is(r.code, 0, r.stdout + r.stderr)
  t.regex(r.stdout, /^2 passed/m)
})

test('the Go testing recipe', async t => {
  await ensureClients(t)
  t.timeout(5 * 60_000, 'the first go build fills the cache')
  const r = await inProject(t, {
    'go.mod': 'module example.com/mytool\n\ngo 1.19\n',
    'mytool_test.go': readmeBlock('fixture-go')
  }, ['go', 'test', '-v', './...'])
  t.is(r.code, 0, r.stdout + r.stderr)
  t.regex(r.stdout, /^--- PASS: TestApmask /m)
  t.regex(r.stdout, /^--- PASS: TestStartsFromTheBootedHost /m)
  t.regex(r.stdout, /^ok\s+example\.com\/mytool/m)
})
