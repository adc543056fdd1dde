/**
 * Permissions and paths through a mount with --allow-other, as root and as `nobody`
 * (setpriv --reuid=65534 --regid=65534 --clear-groups), on a populated host (mdevs, a guest):
 *
 *   - `nobody` reads every attribute with a read bit for others (0444, 0644) and gets
 *     "Permission denied" for the rest (0200, 0400, 0440: default_permissions lets the kernel
 *     check), and every write, to any file, is "Permission denied" (sysfs: root-owned, no
 *     write bit for others); kernel/debug and the control tree kernel/debug/apsim (0700, as
 *     debugfs) and so the guest views below it are closed to `nobody`;
 *   - every link of the tree (bus, drivers, mdevs, IOMMU groups, modules, the guests' own
 *     views) resolves inside the mount to something that exists, and a guest view's links
 *     stay inside that guest's view;
 *   - no path escapes or upsets the daemon: `..` chains, names of 255/256/1024/1025/4096
 *     bytes, paths over PATH_MAX, odd and binary (NUL-free) bytes, look-alikes of real names:
 *     stat, cat, ls and echo > get ENOENT, ENAMETOOLONG, EACCES or ENOTDIR, and the daemon
 *     is alive and logged no error afterwards.
 */
import test from 'ava'
import { chmodSync, existsSync } from 'node:fs'
import path from 'node:path'
import { mountHost, type Mounted, run, type ShResult } from '../helpers/mount.js'

const U1 = '1d6c9a2e-3f4b-4c5d-8e6f-7a8b9c0d1e2f'
const U2 = '4a7e2b91-c6d3-4f58-9a0b-1c2d3e4f5a6b'
const M = 'devices/vfio_ap/matrix'
const T = `${M}/mdev_supported_types/vfio_ap-passthrough`
const NOBODY = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups']
/** A python nobody can run (a pyenv shim under /root is not one). */
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3'

const totals = { reads: 0, writes: 0, links: 0, paths: 0, crashes: 0, violations: 0 }

let m: Mounted | undefined
const mount = (): Mounted => { if (m === undefined) throw new Error('not mounted'); return m }

test.before(async () => {
  m = await mountHost({ args: ['--allow-other'] })
  // mountHost's tmp dir is 0700; nobody must be able to reach the mountpoint
  chmodSync(path.dirname(m.dir), 0o755)
  const r = await m.sh([
    'echo -5,-6 > bus/ap/apmask',
    `echo ${U1} > ${T}/create`, `echo ${U2} > ${T}/create`,
    `echo 5 > ${M}/${U1}/assign_adapter`, `echo 4 > ${M}/${U1}/assign_domain`, `echo 0xab > ${M}/${U1}/assign_domain`,
    `echo 6 > ${M}/${U2}/assign_adapter`, `echo 0x47 > ${M}/${U2}/assign_domain`,
    `echo start g1 ${U1} > kernel/debug/apsim/guests`
  ].join(' && '))
  if (r.code !== 0) throw new Error(r.stderr)
})
test.after.always(async () => {
  await m?.stop()
  console.log(`permissions: ${totals.reads} reads, ${totals.writes} writes as nobody, ${totals.links} links and ${totals.paths} odd paths checked; ${totals.crashes} crashes, ${totals.violations} violations`)
})

/** A python script as `nobody` (or root), cwd the mount. */
async function py (script: string, args: string[], asNobody: boolean): Promise<ShResult> {
  const cmd = asNobody ? [...NOBODY, PYTHON] : ['python3']
  return await run(cmd[0], [...cmd.slice(1), '-c', script, mount().dir, ...args], { cwd: '/' })
}

/** Files (type f) with their modes, found as root; `where` limits to a subtree. */
async function files (where = '.'): Promise<Array<{ path: string, mode: number }>> {
  const r = await mount().sh(`find ${where} -xdev -type f -printf '%m %P\\n'`)
  if (r.code !== 0) throw new Error(r.stderr)
  return r.stdout.split('\n').filter(l => l !== '').map(l => { const [mode, ...p] = l.split(' '); return { path: p.join(' '), mode: parseInt(mode, 8) } })
}

const TRY_ALL = String.raw`
import errno, json, os, sys
root, mode = sys.argv[1], sys.argv[2]
out = {}
for rel in sys.stdin.read().split("\n"):
    if not rel:
        continue
    p = os.path.join(root, rel)
    try:
        if mode == "read":
            with open(p, "rb") as f:
                f.read()
        else:
            fd = os.open(p, os.O_WRONLY)
            try:
                os.write(fd, b"1\n")
            finally:
                os.close(fd)
        out[rel] = "ok"
    except OSError as e:
        out[rel] = errno.errorcode.get(e.errno, str(e.errno))
print(json.dumps(out))
`

async function tryAll (mode: 'read' | 'write', paths: string[], asNobody: boolean): Promise<Record<string, string>> {
  const cmd = asNobody ? [...NOBODY, PYTHON] : ['python3']
  const r = await run(cmd[0], [...cmd.slice(1), '-c', TRY_ALL, mount().dir, mode], { cwd: '/', input: paths.join('\n') })
  if (r.code !== 0) throw new Error(r.stderr)
  return JSON.parse(r.stdout) as Record<string, string>
}

test.serial('as nobody: attributes readable by others read, the rest is Permission denied; every write is Permission denied', async t => {
  const all = (await files()).filter(f => !f.path.startsWith('kernel/debug/'))
  t.true(all.length > 300, `${all.length} files`)
  const reads = await tryAll('read', all.map(f => f.path), true)
  totals.reads += all.length
  const wrongReads = all.filter(f => reads[f.path] !== ((f.mode & 0o004) !== 0 ? 'ok' : 'EACCES')).map(f => `${f.path} (${f.mode.toString(8)}): ${reads[f.path]}`)
  t.deepEqual(wrongReads, [], 'a read works exactly when others have the read bit')
  t.true(all.some(f => f.mode === 0o200) && all.some(f => (f.mode & 0o004) === 0 && f.mode !== 0o200), 'there are write-only and owner-only files')

  const writable = (await files()).filter(f => (f.mode & 0o222) !== 0)
  const sample = [...writable.map(f => f.path), 'bus/ap/bindings', `${M}/${U1}/matrix`]
  const writes = await tryAll('write', sample, true)
  totals.writes += sample.length
  const wrongWrites = sample.filter(p => writes[p] !== 'EACCES').map(p => `${p}: ${writes[p]}`)
  totals.violations += wrongWrites.length
  t.deepEqual(wrongWrites, [], 'nobody writes nothing')
  // nothing changed: the writes never reached a store
  t.is(await mount().read('bus/ap/apmask'), '0xf9ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\n')
  t.is((await mount().sh(`cat ${M}/${U1}/matrix`)).stdout, '05.0004\n05.00ab\n')

  // the shell's view of the same
  const sh = await run(NOBODY[0], [...NOBODY.slice(1), 'bash', '-c', `cd ${mount().dir} && cat bus/ap/apmask >/dev/null && echo +5 > bus/ap/apmask; echo "rc=$?"; cat ${T}/create`], { cwd: '/', env: { ...process.env, LC_ALL: 'C' } })
  t.regex(sh.stderr, /bus\/ap\/apmask: Permission denied/)
  t.regex(sh.stderr, /create: Permission denied/)
  t.regex(sh.stdout, /rc=1/)
})

test.serial('as nobody: the control tree kernel/debug/apsim (0700) and the guest views inside it are closed', async t => {
  const d = mount().dir
  const r = await run(NOBODY[0], [...NOBODY.slice(1), 'bash', '-c', [
    `ls ${d}/kernel/debug/apsim`, 'echo "ls=$?"',
    `ls ${d}/kernel/debug`, 'echo "ls debug=$?"',
    `cat ${d}/kernel/debug/apsim/state`, 'echo "state=$?"',
    `echo scan > ${d}/kernel/debug/apsim/lpar`, 'echo "lpar=$?"',
    `ls ${d}/kernel/debug/apsim/guest/g1/sys/bus/ap`, 'echo "view=$?"',
    `cat ${d}/kernel/debug/apsim/guest/g1/sys/bus/ap/ap_adapter_mask`, 'echo "view file=$?"',
    `stat ${d}/kernel/debug/apsim/guests`, 'echo "stat=$?"'
  ].join('; ')], { cwd: '/', env: { ...process.env, LC_ALL: 'C' } })
  for (const what of ['ls', 'ls debug', 'state', 'lpar', 'view', 'view file', 'stat']) t.regex(r.stdout, new RegExp(`^${what}=[12]$`, 'm'), what)
  const denied = r.stderr.split('\n').filter(l => l !== '')
  t.true(denied.length >= 7 && denied.every(l => l.includes('Permission denied')), r.stderr)
  totals.paths += 7
  // root still has it
  t.regex((await mount().sh('ls kernel/debug/apsim/guest/g1/sys/bus/ap/devices')).stdout, /card05/)
})

test.serial('every link resolves inside the mount to something that exists; a guest view\'s links stay in that view', async t => {
  const r = await py(String.raw`
import json, os, sys
root = os.path.realpath(sys.argv[1])
out = []
for dirpath, dirnames, filenames in os.walk(root):
    for n in dirnames + filenames:
        p = os.path.join(dirpath, n)
        if os.path.islink(p):
            out.append([os.path.relpath(p, root), os.readlink(p), os.path.relpath(os.path.realpath(p), root), os.path.exists(p)])
print(json.dumps(out))
`, [], false)
  t.is(r.code, 0, r.stderr)
  const links = JSON.parse(r.stdout) as Array<[string, string, string, boolean]>
  totals.links += links.length
  t.true(links.length > 100, `${links.length} links`)
  for (const kind of [`bus/mdev/devices/${U1}`, `${T}/devices/${U2}`, `${M}/${U1}/iommu_group`, 'bus/ap/drivers/vfio_ap/module', 'module/vfio_ap/drivers/ap:vfio_ap', 'kernel/debug/apsim/guest/g1/sys/bus/ap/devices/card05', 'class/mdev_bus/matrix']) {
    t.true(links.some(([p]) => p === kind), `${kind} is among the links`)
  }
  const bad: string[] = []
  for (const [p, target, real, exists] of links) {
    if (real.startsWith('..') || path.isAbsolute(real)) bad.push(`${p} -> ${target} leaves the mount (${real})`)
    else if (!exists) bad.push(`${p} -> ${target} dangles`)
    const view = /^(kernel\/debug\/apsim\/guest\/[^/]+\/sys)\//.exec(p)
    if (view !== null && !real.startsWith(`${view[1]}/`)) bad.push(`${p} -> ${target} leaves the guest's view (${real})`)
    if (target.startsWith('/')) bad.push(`${p} -> ${target} is absolute`)
  }
  totals.violations += bad.length
  t.deepEqual(bad, [])
})

test.serial('odd paths: .., overlong names and paths, odd bytes; ENOENT/ENAMETOOLONG/EACCES/ENOTDIR, nothing escapes, the daemon is fine', async t => {
  const names: Array<[string, string]> = [
    ['a'.repeat(255), 'ENOENT'], ['a'.repeat(256), 'ENOENT'], ['b'.repeat(1024), 'ENOENT'],
    ['c'.repeat(1025), 'ENAMETOOLONG'], ['d'.repeat(4096), 'ENAMETOOLONG'],
    ['card4', 'ENOENT'], ['card004', 'ENOENT'], ['CARD04', 'ENOENT'], ['04.4', 'ENOENT'], ['04.00004', 'ENOENT'], ['4.0004', 'ENOENT'],
    [U1.toUpperCase(), 'ENOENT'], [`${U1} `, 'ENOENT'], ['%s%n%x', 'ENOENT'], ['*', 'ENOENT'], ['\\', 'ENOENT'],
    ['\x01\x02\x7f', 'ENOENT'], ['\xff\xfe', 'ENOENT'], ['é', 'ENOENT'], [' ', 'ENOENT'], ['\n', 'ENOENT'], ['-rf', 'ENOENT'],
    ['apmask\\0x', 'ENOENT'], ['__proto__', 'ENOENT'], ['constructor', 'ENOENT'], ['hasOwnProperty', 'ENOENT'], ['toString', 'ENOENT']
  ]
  const dirs = ['', 'bus/ap', 'devices/ap', 'bus/ap/devices', 'devices/ap/card04', M, `${M}/${U1}`, 'kernel/iommu_groups', 'bus/ap/drivers', 'module']
  const cases: Array<{ p: string, stat: string, create: string }> = []
  for (const d of dirs) {
    for (const [n, e] of names) {
      const p = d === '' ? n : `${d}/${n}`
      cases.push({ p, stat: e, create: e === 'ENOENT' ? 'EACCES' : e })
    }
  }
  // below an attribute, through too many ..'s (they stop at / and leave the mount: the kernel's business), overlong paths
  cases.push({ p: 'bus/ap/apmask/x', stat: 'ENOTDIR', create: 'ENOTDIR' })
  cases.push({ p: 'bus/ap/nodir/x', stat: 'ENOENT', create: 'ENOENT' })
  cases.push({ p: `${'x/'.repeat(2100)}y`, stat: 'ENAMETOOLONG', create: 'ENAMETOOLONG' })
  cases.push({ p: `${'bus/ap/../'.repeat(500)}bus/ap/apmask`, stat: 'ENAMETOOLONG', create: 'ENAMETOOLONG' })
  cases.push({ p: `${'./'.repeat(1000)}bus/ap/nothere`, stat: 'ENOENT', create: 'EACCES' })
  const res = await run('python3', ['-c', String.raw`
import errno, json, os, sys
root = sys.argv[1]
cases = json.loads(sys.stdin.read())
def err(f):
    try:
        f()
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
out = []
for c in cases:
    p = os.path.join(root, c["p"]).encode("latin1")
    def create():
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.close(fd)
    def cat():
        with open(p, "rb") as f:
            f.read()
    out.append([c["p"], err(lambda: os.stat(p)), err(cat), err(lambda: os.listdir(p)), err(create)])
print(json.dumps(out))
`, mount().dir], { cwd: '/', input: JSON.stringify(cases) })
  t.is(res.code, 0, res.stderr)
  const got = JSON.parse(res.stdout) as Array<[string, string, string, string, string]>
  totals.paths += got.length
  const bad: string[] = []
  const short = (p: string): string => JSON.stringify(p.length > 60 ? `${p.slice(0, 40)}…(${p.length})` : p)
  got.forEach(([p, st, cat, ls, create], i) => {
    const c = cases[i]
    if (st !== c.stat) bad.push(`stat ${short(p)}: ${st}, expected ${c.stat}`)
    if (cat !== c.stat) bad.push(`cat ${short(p)}: ${cat}, expected ${c.stat}`)
    if (ls !== c.stat) bad.push(`ls ${short(p)}: ${ls}, expected ${c.stat}`)
    if (create !== c.create) bad.push(`echo > ${short(p)}: ${create}, expected ${c.create}`)
  })
  totals.violations += bad.length
  t.deepEqual(bad.slice(0, 30), [], `${bad.length} unexpected results`)
  // the same as nobody: nothing reaches further than for root
  const asNobody = await run(NOBODY[0], [...NOBODY.slice(1), 'bash', '-c', `cd ${mount().dir} && cat "bus/ap/$(printf 'a%.0s' {1..300})"; echo x > "bus/ap/$(printf '\\001\\377')"; ls ../../../..`], { cwd: '/', env: { ...process.env, LC_ALL: 'C' } })
  t.regex(asNobody.stderr, /No such file or directory/)
  t.regex(asNobody.stderr, /Permission denied/)
  // the daemon is alive and logged no error
  const alive = mount().daemon.exitCode === null && mount().daemon.signalCode === null
  if (!alive) totals.crashes++
  t.true(alive)
  t.is((await mount().sh('cat bus/ap/bindings')).code, 0)
  t.deepEqual(mount().log().split('\n').filter(l => /"level":(50|60)/.test(l)).map(l => l.slice(0, 300)), [])
})
