/**
 * Kernel profiles in-process, where the mount would be too slow: /work/shared/spec/vfio-ap.md
 * §9.2 scenario 48 needs 65,536 mdevs (switch `exhaustedEusers` of lib/profiles.ts). The other
 * switches are tested through the mount in test/conformance/profiles.test.ts.
 */
import test from 'ava'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { Host } from '../../lib/host.js'
import { PROFILES } from '../../lib/profiles.js'
import { loadTopology } from '../../lib/topology.js'
import { SysfsError } from '../../lib/errors.js'

const TG_YAML = readFileSync(fileURLToPath(new URL('../../../test/fixtures/tg.yaml', import.meta.url)), 'utf8')
const T = 'devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough'
const LAST = 'ffffffff-ffff-4fff-bfff-ffffffffffff'

/** The adjacent profiles where `exhaustedEusers` flips, from the table itself. */
function flip (): [older: string, newer: string] {
  const i = PROFILES.findIndex((p, k) => k > 0 && p.exhaustedEusers !== PROFILES[k - 1].exhaustedEusers)
  return [PROFILES[i - 1].name, PROFILES[i].name]
}
const [OLDER, NEWER] = flip()

/** Fixture TG under `kernel`, with all 65,536 vfio_ap-passthrough instances created. */
function exhausted (kernel: string): Host {
  const host = new Host(loadTopology(`kernel: "${kernel}"\n${TG_YAML}`, `test/fixtures/tg.yaml (kernel ${kernel})`))
  for (let i = 0; i < 65536; i++) {
    const uuid = `${i.toString(16).padStart(8, '0')}-0000-4000-8000-000000000000`
    host.write(`${T}/create`, `${uuid}\n`)
  }
  return host
}

test(`exhaustedEusers: ${OLDER} → ${NEWER}: #48 creating an mdev when all 65,536 exist is EPERM, then EUSERS`, t => {
  t.is(PROFILES.filter((p, k) => k > 0 && p.exhaustedEusers !== PROFILES[k - 1].exhaustedEusers).length, 1, 'exhaustedEusers flips once')
  for (const [kernel, errno] of [[OLDER, 'EPERM'], [NEWER, 'EUSERS']] as const) {
    const host = exhausted(kernel)
    t.is(host.read(`${T}/available_instances`), '0\n', `${kernel}: available_instances`)
    const e = t.throws(() => host.write(`${T}/create`, `${LAST}\n`), { instanceOf: SysfsError }, `${kernel}: one more create`)
    t.is((e as SysfsError | undefined)?.code, errno, `${kernel}: the 65,537th create`)
    const gone = t.throws(() => host.read(`devices/vfio_ap/matrix/${LAST}/matrix`), { instanceOf: SysfsError }, `${kernel}: no directory for the refused mdev`)
    t.is((gone as SysfsError | undefined)?.code, 'ENOENT')
    // one instance handed back makes room for exactly one
    host.write(`devices/vfio_ap/matrix/00000000-0000-4000-8000-000000000000/remove`, '1\n')
    t.is(host.read(`${T}/available_instances`), '1\n', `${kernel}: after one remove`)
    t.is(host.write(`${T}/create`, `${LAST}\n`), 37, `${kernel}: create after one remove`)
    t.is(host.read(`${T}/available_instances`), '0\n', `${kernel}: full again`)
  }
})

test('#48 under 5.10 (before 6.1): EPERM', t => {
  const host = exhausted('5.10')
  const e = t.throws(() => host.write(`${T}/create`, `${LAST}\n`), { instanceOf: SysfsError })
  t.is((e as SysfsError | undefined)?.code, 'EPERM')
})
