/**
 * mount-scripts/setup.sh decides what to install: run on a copy of the checkout with dpkg,
 * apt-get, apt-cache, npm and (for the old-Node case) node replaced by stubs that log their
 * arguments, so nothing is installed and no package list is fetched.
 */
import test from 'ava'
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { run, type ShResult } from '../helpers/mount.js'

const SETUP = fileURLToPath(new URL('../../../mount-scripts/setup.sh', import.meta.url))

/** Runs setup.sh where apt-cache knows `available` packages and dpkg has none; returns its result and the stubs' log. */
async function setup (available: string[], stubs: Record<string, string> = {}): Promise<ShResult & { calls: string[] }> {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'apsim-setup-'))
  try {
    mkdirSync(path.join(tmp, 'mount-scripts'))
    copyFileSync(SETUP, path.join(tmp, 'mount-scripts/setup.sh'))
    writeFileSync(path.join(tmp, 'package-lock.json'), '{}')
    mkdirSync(path.join(tmp, 'node_modules'))
    writeFileSync(path.join(tmp, 'node_modules/.package-lock.json'), '{}')
    utimesSync(path.join(tmp, 'package-lock.json'), 1, 1) // older than node_modules: no npm ci
    const bin = path.join(tmp, 'bin')
    mkdirSync(bin)
    const log = path.join(tmp, 'calls')
    const stub = (name: string, body: string): void => {
      writeFileSync(path.join(bin, name), `#!/bin/sh\necho "${name} $*" >> ${log}\n${body}\n`)
      chmodSync(path.join(bin, name), 0o755)
    }
    stub('dpkg', 'exit 1')
    stub('apt-get', 'exit 0')
    stub('apt-cache', `case " ${available.join(' ')} " in *" $2 "*) exit 0 ;; esac; exit 100`)
    stub('npm', 'exit 0')
    for (const [name, body] of Object.entries(stubs)) stub(name, body)
    const r = await run('bash', [path.join(tmp, 'mount-scripts/setup.sh')], { env: { ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}` } })
    let calls: string[] = []
    try { calls = readFileSync(log, 'utf8').trim().split('\n') } catch { /* none */ }
    return { ...r, calls }
  } finally {
    rmSync(tmp, { recursive: true, force: true })
  }
}

test('setup.sh installs libfuse2t64 where the release has it (Ubuntu 24.04), libfuse2 elsewhere (Debian 12)', async t => {
  const ubuntu = await setup(['libfuse2t64', 'libfuse2'])
  t.is(ubuntu.code, 0, ubuntu.stderr)
  t.true(ubuntu.calls.includes('apt-get update -qq'))
  t.true(ubuntu.calls.includes('apt-get install -y -qq libfuse2t64'), ubuntu.calls.join('\n'))
  t.regex(ubuntu.stderr, /^apsim setup: installing libfuse2t64$/m)
  t.true(ubuntu.calls.includes('npm run --silent build'))

  const debian = await setup(['libfuse2'])
  t.is(debian.code, 0, debian.stderr)
  t.true(debian.calls.includes('apt-get install -y -qq libfuse2'), debian.calls.join('\n'))
})

test('setup.sh refuses a Node.js older than 18, which engines does not admit', async t => {
  const r = await setup(['libfuse2'], { node: 'case "$1" in --version) echo v16.20.2 ;; *) exit 1 ;; esac' })
  t.is(r.code, 1)
  t.regex(r.stderr, /^apsim setup: Node\.js v16\.20\.2 is too old; apsim needs Node\.js 18 or newer$/m)
  t.false(r.calls.includes('npm run --silent build'))
})
