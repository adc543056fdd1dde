/**
 * The package as users get it: what `npm pack` puts in the tarball, the README's API example
 * type-checked (`tsc --strict`) and run in a fresh project that installed the tarball, deep
 * imports refused, and the `apsim` bin of a global install mounting a host.
 */
import test from 'ava'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { requireFuse, RUN_DIR, run, type ShResult } from '../helpers/mount.js'
import { readmeBlock } from '../helpers/readme.js'

const ROOT = fileURLToPath(new URL('../../../', import.meta.url))
const PKG = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { name: string, version: string, scripts: Record<string, string>, private?: boolean, engines: { node: string } }
const TSC = path.join(ROOT, 'node_modules/typescript/bin/tsc')
// npm as a user runs it: none of the npm_* variables of an enclosing `npm test`.
const ENV = { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k))), APSIM_RUN_DIR: RUN_DIR }
const npm = async (cwd: string, ...args: string[]): Promise<ShResult> => await run('npm', ['--no-audit', '--no-fund', '--loglevel=error', ...args], { cwd, env: ENV })

test('the tarball holds what runs, and no tests, bench or CI', async t => {
  t.is(PKG.private, undefined)
  t.is(PKG.engines.node, '>=18')
  t.is(PKG.scripts.prepack, 'npm run build')
  const r = await npm(ROOT, 'pack', '--dry-run', '--json', '--ignore-scripts')
  t.is(r.code, 0, r.stderr)
  const files = (JSON.parse(r.stdout) as Array<{ files: Array<{ path: string, mode: number }> }>)[0].files.map(f => f.path).sort()
  const allowed = /^(README\.md|package\.json|build\/lib\/.+\.(js|d\.ts)|build\/daemon\/[a-z-]+\.js|mount-scripts\/(apsim-(ns|clean)\.sh|udev-relay\.pl)|systemd\/[^/]+)$/
  t.deepEqual(files.filter(f => !allowed.test(f)), [])
  for (const f of ['build/lib/index.js', 'build/lib/index.d.ts', 'build/daemon/cli.js', 'mount-scripts/apsim-ns.sh', 'mount-scripts/udev-relay.pl']) t.true(files.includes(f), f)
  t.false(files.some(f => /^(test|bench|\.ci)\/|^build\/(test|bench)\/|\.map$/.test(f)))
})

test('a fresh project installs the tarball; the README example passes tsc --strict and runs; the apsim bin of a global install works', async t => {
  t.timeout(10 * 60_000, 'npm installs')
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'apsim-pkg-'))
  try {
    const packed = await npm(ROOT, 'pack', '--ignore-scripts', '--pack-destination', tmp)
    t.is(packed.code, 0, packed.stderr)
    const tgz = path.join(tmp, `${PKG.name}-${PKG.version}.tgz`)
    t.true(existsSync(tgz))

    const proj = path.join(tmp, 'proj')
    mkdirSync(proj)
    writeFileSync(path.join(proj, 'package.json'), JSON.stringify({ name: 'uses-apsim', private: true, type: 'module' }))
    writeFileSync(path.join(proj, 'tsconfig.json'), JSON.stringify({ compilerOptions: { strict: true, module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', types: ['node'] } }))
    const installed = await npm(proj, 'install', tgz, path.join(ROOT, 'node_modules/@types/node'))
    t.is(installed.code, 0, installed.stderr)
    writeFileSync(path.join(proj, 'example.test.ts'), readmeBlock('api-example'))
    const tsc = await run(process.execPath, [TSC, '-p', proj], { cwd: proj, env: ENV })
    t.deepEqual(tsc, { code: 0, stdout: '', stderr: '' }, 'tsc --strict')
    const ran = await run(process.execPath, ['--test', 'example.test.js'], { cwd: proj, env: ENV })
    t.is(ran.code, 0, ran.stdout + ran.stderr)
    t.regex(ran.stdout, /^# pass 3$/m)
    t.regex(ran.stdout, /^# fail 0$/m)
    const deep = await run(process.execPath, ['--input-type=module', '-e', "await import('apsim/build/lib/host.js')"], { cwd: proj, env: ENV })
    t.not(deep.code, 0)
    t.regex(deep.stderr, /ERR_PACKAGE_PATH_NOT_EXPORTED/)

    const prefix = path.join(tmp, 'global')
    const global = await npm(tmp, 'install', '-g', '--prefix', prefix, tgz)
    t.is(global.code, 0, global.stderr)
    const bin = path.join(prefix, 'bin/apsim')
    t.true((statSync(bin).mode & 0o111) !== 0, 'executable')
    t.deepEqual(await run(bin, ['--version'], { env: ENV }), { code: 0, stdout: `${PKG.version}\n`, stderr: '' })
    requireFuse()
    const dir = path.join(tmp, 'sys')
    const up = await run(bin, ['mount', dir, '--daemon'], { env: ENV })
    t.is(up.code, 0, up.stderr)
    try {
      t.is(readFileSync(path.join(dir, 'bus/ap/apmask'), 'latin1'), '0x' + 'f'.repeat(64) + '\n')
    } finally {
      const down = await run(bin, ['umount', dir], { env: ENV })
      t.is(down.code, 0, down.stderr)
    }
    // apsim run finds mount-scripts/apsim-ns.sh inside the installed package
    const ns = await run(bin, ['run', '--', 'cat', '/sys/bus/ap/ap_domain'], { env: ENV })
    t.deepEqual(ns, { code: 0, stdout: '4\n', stderr: '' })
  } finally {
    rmSync(tmp, { recursive: true, force: true })
  }
})
