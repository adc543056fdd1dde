/**
 * The README's "In CI" recipes, run as written where this machine can: the packed tarball
 * installed globally by the recipes' own `npm install -g` line, then each recipe's `apsim run`
 * lines against a test script written for /sys: as root (through sudo where the recipe says
 * so) and, for the rootless recipe, as a user who is not root. (The apt-get lines are the
 * distributions' business; Ubuntu's packages are not Debian's.)
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import test from 'ava'
import { ensureClients } from '../helpers/clients.js'
import { requireFuse, run } from '../helpers/mount.js'
import { readmeBlock } from '../helpers/readme.js'
import { userCopy, type UserCopy } from '../helpers/user.js'

const ROOT = fileURLToPath(new URL('../../..', import.meta.url))
const RECIPES = ['ci-github-sudo', 'ci-github-rootless', 'ci-debian-container', 'ci-gitlab']

/** The shell lines of a recipe: YAML `run:` steps and script items, or the container's script. */
function commands (block: string): string[] {
  return block.split('\n')
    .map(l => l.replace(/^\s*-\s+(run:\s+)?/, '').replace(/\s+#.*$/, '').replace(/'$/, '').trim())
    .filter(l => /^(sudo .*)?(apsim|npm) /.test(l) || /^sudo env .* apsim /.test(l))
}

/** `./test/ap-tooling.sh`: a user's test, written for /sys (or SYSFS_ROOT without namespaces). */
const TOOLING = `#!/bin/sh
set -e
R=\${SYSFS_ROOT:-/sys}
echo -5 > "$R/bus/ap/apmask"
readlink "$R/devices/ap/card05/05.0004/driver"
`

let work: string
let prefix: string
let user: UserCopy

test.before(async t => {
  t.timeout(10 * 60_000, 'npm pack and a global install')
  requireFuse()
  await ensureClients(t) // sudo, as GitHub's runners have it
  user = await userCopy()
  work = mkdtempSync(path.join(os.tmpdir(), 'apsim-ci-'))
  chmodSync(work, 0o755)
  mkdirSync(path.join(work, 'vendor'))
  mkdirSync(path.join(work, 'test'))
  writeFileSync(path.join(work, 'test/ap-tooling.sh'), TOOLING, { mode: 0o755 })
  const pack = await run('npm', ['pack', '--ignore-scripts', '--pack-destination', path.join(work, 'vendor')], { cwd: ROOT })
  if (pack.code !== 0) throw new Error(`npm pack: ${pack.stderr}`)
  prefix = path.join(work, 'prefix')
  const installs = new Set(RECIPES.flatMap(r => commands(readmeBlock(r)).filter(c => c.startsWith('npm '))))
  if (installs.size !== 1) throw new Error(`the recipes install apsim differently: ${[...installs].join(' | ')}`)
  const install = await run('bash', ['-c', [...installs][0]], { cwd: work, env: { ...process.env, npm_config_prefix: prefix } })
  if (install.code !== 0) throw new Error(`${[...installs][0]}: ${install.stderr}`)
  const chmod = await run('chmod', ['-R', 'a+rX', work])
  if (chmod.code !== 0) throw new Error(chmod.stderr)
})
test.after.always(() => {
  if (work !== undefined) rmSync(work, { recursive: true, force: true })
  user?.remove()
})

const PATHS = (): string => `${prefix}/bin:${process.env.PATH ?? ''}`

for (const recipe of ['ci-github-sudo', 'ci-debian-container', 'ci-gitlab']) {
  test(`${recipe}: its apsim line runs the tool against the simulated /sys, as root`, async t => {
    const lines = commands(readmeBlock(recipe)).filter(c => c.includes('apsim run'))
    t.is(lines.length, 1)
    const r = await run('bash', ['-c', lines[0]], { cwd: work, env: { ...process.env, PATH: PATHS(), LC_ALL: 'C' } })
    t.deepEqual(r, { code: 0, stdout: '../../../../bus/ap/drivers/vfio_ap\n', stderr: '' }, lines[0])
  })
}

test('ci-github-rootless: its apsim lines run the tool as a user who is not root', async t => {
  await ensureClients(t)
  const lines = commands(readmeBlock('ci-github-rootless')).filter(c => c.startsWith('apsim run'))
  t.deepEqual(lines, ['apsim run -- ./test/ap-tooling.sh', 'apsim run --env-only -- ./test/ap-tooling.sh'])
  for (const line of lines) {
    const r = await user.as('bash', ['-c', `cd ${work} && ${line}`], { PATH: PATHS() })
    t.deepEqual(r, { code: 0, stdout: '../../../../bus/ap/drivers/vfio_ap\n', stderr: '' }, line)
  }
})
