/**
 * The CLI face of kernel profiles: `apsim profiles` and `apsim mount --kernel`.
 */
import test from 'ava'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { PROFILE_NAMES } from '../../lib/profiles.js'
import { apsim, mountHost, requireFuse } from '../helpers/mount.js'

test('apsim profiles lists every profile, oldest first, with what each changes', async t => {
  const r = await apsim('profiles', '--json')
  t.is(r.code, 0)
  const list = JSON.parse(r.stdout) as Array<{ name: string, changes: Array<{ switch: string, means: string }> }>
  t.deepEqual(list.map(p => p.name), PROFILE_NAMES)
  t.deepEqual(list[0].changes, [])
  for (const p of list.slice(1)) {
    t.true(p.changes.length > 0, `${p.name} changes something`)
    for (const c of p.changes) t.true(c.means.length > 0)
  }
  const text = await apsim('profiles')
  t.regex(text.stdout, /^6\.10: /m)
  t.regex(text.stdout, /^ {2}apConfig false -> true: 6\.10: mdev `ap_config`\.$/m)
})

test('mount --kernel 5.10: the attributes that kernel lacks are absent', async t => {
  requireFuse()
  const m = await mountHost({ args: ['--kernel', '5.10'] })
  try {
    const r = await m.sh('cat devices/vfio_ap/matrix/features; cat bus/ap/bindings; cat bus/ap/ap_max_domain_id')
    t.regex(r.stderr, /features: No such file or directory/)
    t.regex(r.stderr, /bindings: No such file or directory/)
    t.is(r.stdout, '255\n')
  } finally {
    await m.stop()
  }
})

test('mount --kernel with an unknown profile, or over an existing state file, is refused', async t => {
  requireFuse()
  const dir = mkdtempSync(path.join(tmpdir(), 'apsim-kernel-'))
  try {
    const bad = await apsim('mount', path.join(dir, 'mnt'), '--kernel', '4.19')
    t.is(bad.code, 1)
    t.regex(bad.stderr, /^apsim: --kernel 4\.19: no such profile \(5\.10, 6\.0, 6\.8, 6\.10, 6\.12, newest\)/)
    const state = path.join(dir, 'state.json')
    const m = await mountHost({ args: ['--state', state] })
    await m.stop()
    const again = await apsim('mount', path.join(dir, 'mnt'), '--state', state, '--kernel', '5.10')
    t.is(again.code, 1)
    t.regex(again.stderr, /--kernel applies to a new host; .* already has one \(kernel newest\)/)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
