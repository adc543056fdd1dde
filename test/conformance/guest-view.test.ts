/**
 * What a guest's own kernel shows, through the mount: `kernel/debug/apsim/guest/NAME/sys/`
 * is the guest's own sysfs root (`bus/ap`, `devices/ap`), backed by the guest's own kernel.
 *
 * The scenario is the kernel documentation's three-guest example
 * (Documentation/arch/s390/vfio-ap.rst, /work/shared/spec/vfio-ap.md §9.1): fixture TG, which
 * is also the default topology, `echo -5,-6 > /sys/bus/ap/apmask`, mdevs U1/U2/U3 configured
 * as in §9.1, guests Guest1/Guest2/Guest3 started on them. Each guest must see exactly the
 * cards and queues of the documentation's tables, with the host cards' types:
 *
 *   Guest1: 05 05.0004 05.00ab 06 06.0004 06.00ab   (CEX5C for 05, CEX5A for 06)
 *   Guest2: 05 05.0047 05.00ff
 *   Guest3: 06 06.0047 06.00ff
 *
 * Plus: the guest's writes stay in the guest, its links stay inside it, and it follows hot plug.
 */
import { test, type ExecutionContext } from '../helpers/kernel.js'
import { mountHost, requireFuse, type Mounted, type ShResult } from '../helpers/mount.js'
import { mountSlot } from '../helpers/shell.js'

const U1 = '1d6c9a2e-3f4b-4c5d-8e6f-7a8b9c0d1e2f'
const U2 = '4a7e2b91-c6d3-4f58-9a0b-1c2d3e4f5a6b'
const U3 = '7f3e9d2c-1b0a-4e8d-b7c6-5a4f3e2d1c0b'

const PRELUDE = [
  'export LC_ALL=C',
  'M="$S/devices/vfio_ap/matrix"',
  'T="$M/mdev_supported_types/vfio_ap-passthrough"',
  'C="$S/kernel/debug/apsim"',
  `U1=${U1}; U2=${U2}; U3=${U3}`
].join('; ') + '\n'

const range = (a: number, b: number): number[] => Array.from({ length: b - a + 1 }, (_, i) => a + i)
/** `0x` + 64 lowercase hex digits + `\n`, id 0 leftmost (also the QCI-mask format: 8 × %08x). */
function mask (ids: Iterable<number>): string {
  const set = new Set(ids)
  let s = '0x'
  for (let k = 0; k < 64; k++) s += range(0, 3).reduce((v, b) => v | (set.has(4 * k + b) ? 8 >> b : 0), 0).toString(16)
  return s + '\n'
}
const hex2 = (n: number): string => n.toString(16).padStart(2, '0')
const card = (a: number): string => `card${hex2(a)}`
const qn = (a: number, d: number): string => `${hex2(a)}.${d.toString(16).padStart(4, '0')}`

interface Guest {
  name: string
  mdev: 'U1' | 'U2' | 'U3'
  uuid: string
  /** §9.1 assignments, in the order the documentation types them. */
  config: string[]
  adapters: number[]
  domains: number[]
}

const GUESTS: Guest[] = [
  { name: 'Guest1', mdev: 'U1', uuid: U1, config: ['echo 5 > assign_adapter', 'echo 6 > assign_adapter', 'echo 4 > assign_domain', 'echo 0xab > assign_domain'], adapters: [5, 6], domains: [4, 0xab] },
  { name: 'Guest2', mdev: 'U2', uuid: U2, config: ['echo 5 > assign_adapter', 'echo 0x47 > assign_domain', 'echo 0xff > assign_domain'], adapters: [5], domains: [0x47, 0xff] },
  { name: 'Guest3', mdev: 'U3', uuid: U3, config: ['echo 6 > assign_adapter', 'echo 0x47 > assign_domain', 'echo 0xff > assign_domain'], adapters: [6], domains: [0x47, 0xff] }
]

/** The host's cards (fixture TG): all CEX5, 5 in CCA mode, 6 an accelerator. */
const TYPE: Record<number, string> = { 4: 'CEX5C', 5: 'CEX5C', 6: 'CEX5A' }

const show = (script: string, r: ShResult): string =>
  `$ ${script.trim()}\n  exit ${r.code}\n  stdout ${JSON.stringify(r.stdout)}\n  stderr ${JSON.stringify(r.stderr)}`

class H {
  constructor (readonly t: ExecutionContext, readonly m: Mounted) {}

  async sh (script: string): Promise<ShResult> { return await this.m.sh(PRELUDE + script) }

  async ok (script: string): Promise<string> {
    const r = await this.sh(script)
    this.t.true(r.code === 0 && r.stderr === '', `expected success\n${show(script, r)}`)
    return r.stdout
  }

  async cat (path: string): Promise<string> { return await this.ok(`cat "${path}"`) }

  async ls (dir: string): Promise<string[]> {
    const r = await this.sh(`ls "${dir}"`)
    return r.code === 0 ? r.stdout.split('\n').filter(s => s !== '').sort() : [`ls failed: ${r.stderr.trim()}`]
  }

  async setup (guests: Guest[]): Promise<void> {
    await this.ok('echo -5,-6 > "$S/bus/ap/apmask"')
    for (const g of guests) await this.ok(`echo $${g.mdev} > "$T/create"`)
    for (const g of guests) for (const c of g.config) await this.ok(`cd "$M/$${g.mdev}" && ${c}`)
    for (const g of guests) await this.ok(`echo "start ${g.name} $${g.mdev}" > "$C/guests"`)
  }

  /** Asserts that guest `name` sees exactly `adapters` × `domains` (and `cdoms` as control domains). */
  async viewIs (name: string, adapters: number[], domains: number[], cdoms: number[], what: string): Promise<void> {
    const { t } = this
    const V = `$C/guest/${name}/sys`
    const cards = adapters.map(card)
    const queues = adapters.flatMap(a => domains.map(d => qn(a, d)))
    const hostOther = (await this.ls('$S/devices/ap')).filter(n => !n.startsWith('card'))

    const devicesAp = await this.ls(`${V}/devices/ap`)
    t.deepEqual(devicesAp.filter(n => n.startsWith('card')), cards, `${what}: ls ${name}/sys/devices/ap cards`)
    t.deepEqual(devicesAp.filter(n => !n.startsWith('card')), hostOther, `${what}: the rest of devices/ap is what a kernel shows`)
    for (const a of adapters) {
      t.deepEqual((await this.ls(`${V}/devices/ap/${card(a)}`)).filter(n => /^[0-9a-f]{2}\.[0-9a-f]{4}$/.test(n)),
        domains.map(d => qn(a, d)), `${what}: queues of ${name}'s ${card(a)}`)
      t.is(await this.cat(`${V}/devices/ap/${card(a)}/type`), `${TYPE[a]}\n`, `${what}: ${name} ${card(a)}/type`)
      t.is(await this.cat(`${V}/devices/ap/${card(a)}/online`), '1\n', `${what}: ${name} ${card(a)}/online`)
      for (const d of domains) t.is(await this.cat(`${V}/devices/ap/${card(a)}/${qn(a, d)}/online`), '1\n', `${what}: ${name} ${qn(a, d)}/online`)
    }
    t.deepEqual(await this.ls(`${V}/bus/ap/devices`), [...queues, ...cards].sort(), `${what}: ${name}/sys/bus/ap/devices`)
    t.is(await this.cat(`${V}/bus/ap/ap_adapter_mask`), mask(adapters), `${what}: ${name} ap_adapter_mask`)
    t.is(await this.cat(`${V}/bus/ap/ap_usage_domain_mask`), mask(domains), `${what}: ${name} ap_usage_domain_mask`)
    t.is(await this.cat(`${V}/bus/ap/ap_control_domain_mask`), mask(cdoms), `${what}: ${name} ap_control_domain_mask`)
    // the control plane's record of the guest's masks agrees with what its kernel shows
    t.is(await this.cat(`$C/guest/${name}/apcb`), [mask(adapters), mask(domains), mask(cdoms)].map(s => s.trim()).join(',') + '\n', `${what}: guest/${name}/apcb`)
    t.is(await this.cat(`${V}/bus/ap/bindings`), `${queues.length}/${queues.length} (complete)\n`, `${what}: ${name} bindings`)
    // ap-bus §1.3 auto-selection inside the guest: its lowest usage domain
    if (domains.length > 0) t.is(await this.cat(`${V}/bus/ap/ap_domain`), `${Math.min(...domains)}\n`, `${what}: ${name} ap_domain`)
  }
}


/** The default topology (no --topology): fixture TG. */
async function host (t: ExecutionContext, body: (h: H) => Promise<void>): Promise<void> {
  await mountSlot(async () => {
    const m = await mountHost()
    try {
      await body(new H(t, m))
      if (!t.passed) t.log(`daemon log (tail):\n${m.log().split('\n').slice(-40).join('\n')}`)
    } finally {
      await m.stop()
    }
  })
}

test.before('root and /dev/fuse are available (fails, never skips)', () => { requireFuse() })

test('the default topology is fixture TG', async t => {
  await host(t, async h => {
    t.is(await h.cat('$C/lpar'), [
      'adapter 0x04 CEX5 cca configured',
      'adapter 0x05 CEX5 cca configured',
      'adapter 0x06 CEX5 accel configured',
      'usage-domains 0x04 0x47 0xab 0xff',
      'control-domains 0x04 0x47 0xab 0xff',
      ''
    ].join('\n'))
    t.is(await h.cat('$S/bus/ap/ap_max_adapter_id'), '63\n')
    t.is(await h.cat('$S/bus/ap/ap_max_domain_id'), '255\n')
    for (const a of [4, 5, 6]) t.is(await h.cat(`$S/devices/ap/${card(a)}/type`), `${TYPE[a]}\n`)
  })
})

test('three guests of the documentation example each see exactly their cards and queues', async t => {
  await host(t, async h => {
    await h.setup(GUESTS)
    t.is(await h.cat('$C/guests'), `Guest1 ${U1}\nGuest2 ${U2}\nGuest3 ${U3}\n`)
    t.deepEqual(await h.ls('$C/guest'), ['Guest1', 'Guest2', 'Guest3'])
    for (const g of GUESTS) {
      t.is(await h.cat(`$C/guest/${g.name}/mdev`), `${g.uuid}\n`)
      // §9.1 assigns no control domains
      await h.viewIs(g.name, g.adapters, g.domains, [], 'doc example')
      // on the host, every APQN of a running guest's view is in use
      for (const a of g.adapters) for (const d of g.domains) t.is(await h.cat(`$S/bus/ap/devices/${qn(a, d)}/status`), 'in use\n', `host ${qn(a, d)}/status`)
    }
    // adapter 4 stays with the host: nobody sees it
    for (const g of GUESTS) t.is((await h.sh(`test -e "$C/guest/${g.name}/sys/devices/ap/card04"`)).code, 1, `${g.name} has no card04`)
  })
})

test('the guest\'s writes go to its own kernel and never to the host; the host\'s hot plug still reaches it', async t => {
  await host(t, async h => {
    await h.setup(GUESTS.slice(0, 1))
    const V = '$C/guest/Guest1/sys'
    await h.ok(`echo 0 > "${V}/devices/ap/card05/05.0004/online"; echo 0 > "${V}/devices/ap/card06/online"; echo -5 > "${V}/bus/ap/apmask"; echo 0xab > "${V}/bus/ap/ap_domain"`)
    t.is(await h.cat(`${V}/devices/ap/card06/online`), '0\n')
    // apmask -5 took 05.0004 from cex4queue: no driver, so no zcrypt `online` either
    t.is((await h.sh(`ls "${V}/devices/ap/card05/05.0004/" | grep -c "^driver$\\|^online$"`)).stdout, '0\n')
    t.is(await h.cat(`${V}/bus/ap/apmask`), mask(range(0, 255).filter(i => i !== 5)))
    t.is(await h.cat(`${V}/bus/ap/ap_domain`), '171\n')
    // A KVM guest cannot reconfigure adapters (SCLP has no AP facility there).
    const r = await h.sh(`echo 0 > "${V}/devices/ap/card06/config"`)
    t.regex(r.stderr, /echo: write error: Operation not supported$/m)
    t.is(await h.ok('basename "$(readlink $S/devices/ap/card05/05.0004/driver)"'), 'vfio_ap\n', 'host queue untouched')
    t.is(await h.cat('$S/devices/ap/card06/online'), '1\n', 'host card untouched')
    t.is(await h.cat('$S/bus/ap/apmask'), mask(range(0, 255).filter(i => i !== 5 && i !== 6)), 'host apmask untouched')
    // hot plug: domain 0x47 joins Guest1's mdev; the guest's own settings stay
    await h.ok('cd "$M/$U1" && echo 0x47 > assign_domain')
    t.deepEqual((await h.ls(`${V}/devices/ap/card06`)).filter(n => n.includes('.')), ['06.0004', '06.0047', '06.00ab'])
    t.is(await h.cat(`${V}/devices/ap/card06/online`), '0\n')
    t.is(await h.cat(`${V}/bus/ap/apmask`), mask(range(0, 255).filter(i => i !== 5)))
    // no new files
    t.not((await h.sh(`touch "${V}/bus/ap/newfile"`)).code, 0, 'touch in the view must fail')
  })
})

test('the guest view\'s device links resolve inside the view', async t => {
  await host(t, async h => {
    await h.setup(GUESTS.slice(0, 1))
    const root = (await h.ok('readlink -f "$C/guest/Guest1/sys"')).trim()
    t.true(root.endsWith('/kernel/debug/apsim/guest/Guest1/sys'), root)
    const resolved = async (link: string): Promise<string> => (await h.ok(`readlink -f "$C/guest/Guest1/sys/${link}"`)).trim()
    t.is(await resolved('bus/ap/devices/05.0004'), `${root}/devices/ap/card05/05.0004`)
    t.is(await resolved('bus/ap/devices/card06'), `${root}/devices/ap/card06`)
    t.is(await resolved('devices/ap/card05/driver'), `${root}/bus/ap/drivers/cex4card`)
    t.is(await resolved('devices/ap/card05/05.00ab/driver'), `${root}/bus/ap/drivers/cex4queue`)
    t.is(await resolved('devices/ap/card06/06.0004/subsystem'), `${root}/bus/ap`)
    t.is(await resolved('bus/ap/drivers/cex4queue/06.00ab'), `${root}/devices/ap/card06/06.00ab`)
    // and a guest's queue reads through its link like any other
    t.is(await h.cat('$C/guest/Guest1/sys/bus/ap/devices/06.00ab/online'), '1\n')
  })
})

test('every link in the guest view resolves, and stays inside the view', async t => {
  await host(t, async h => {
    await h.setup(GUESTS.slice(0, 1))
    const root = (await h.ok('readlink -f "$C/guest/Guest1/sys"')).trim()
    const out = await h.ok('cd "$C/guest/Guest1/sys" && find . -type l | sort | while read -r l; do echo "$l $(readlink -f "$l" || echo UNRESOLVED)"; done')
    const lines = out.split('\n').filter(l => l !== '')
    t.true(lines.length >= 20, `links found: ${lines.length}`)
    const bad = lines.filter(l => { const target = l.split(' ')[1] ?? ''; return !target.startsWith(`${root}/`) })
    t.deepEqual(bad, [], 'links that do not resolve to an existing path inside the view (readlink -f)')
  })
})

test('the guest view follows hot plug and unplug, and goes away when the guest stops', async t => {
  await host(t, async h => {
    await h.setup(GUESTS.slice(0, 1))
    await h.viewIs('Guest1', [5, 6], [4, 0xab], [], 'started')
    const updates = Number.parseInt(await h.cat('$C/guest/Guest1/updates'), 10)

    await h.ok('echo 0x47 > "$M/$U1/assign_domain"')
    await h.viewIs('Guest1', [5, 6], [4, 0x47, 0xab], [], 'after assign_domain 0x47')
    await h.ok('echo 4 > "$M/$U1/assign_control_domain"')
    await h.viewIs('Guest1', [5, 6], [4, 0x47, 0xab], [4], 'after assign_control_domain 4')
    await h.ok('echo 6 > "$M/$U1/unassign_adapter"')
    await h.viewIs('Guest1', [5], [4, 0x47, 0xab], [4], 'after unassign_adapter 6')
    await h.ok('echo 0xab > "$M/$U1/unassign_domain"')
    await h.viewIs('Guest1', [5], [4, 0x47], [4], 'after unassign_domain 0xab')
    t.is(await h.cat('$C/guest/Guest1/updates'), `${updates + 4}\n`, 'one guest update per hot plug/unplug')

    await h.ok('echo "stop Guest1" > "$C/guests"')
    t.deepEqual(await h.ls('$C/guest'), [], 'no running guest, no guest directory')
    t.is((await h.sh('test -e "$C/guest/Guest1/sys/devices/ap"')).code, 1, 'the view is gone')
  })
})
