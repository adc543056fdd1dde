/**
 * Host.reset(), the fixture verb: back to the state the host booted in (or to a snapshot),
 * fault rules and history included; and the package's public entry point.
 */
import test from 'ava'
import * as api from '../../lib/index.js'
import { Host, type HostState } from '../../lib/host.js'
import { SysfsError } from '../../lib/errors.js'
import { defaultTopology, loadTopology } from '../../lib/topology.js'

const UUID = '62177883-f1bb-47f0-914d-32a22e3a8804'
const CREATE = 'devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create'
const code = (fn: () => unknown): string | undefined => { try { fn(); return undefined } catch (e) { return (e as SysfsError).code } }

/** Changes a bit of everything: masks, an mdev with a guest, the LPAR, a fault rule that fired. */
function dirty (h: Host): void {
  h.write('bus/ap/apmask', '-5,-6\n')
  h.write(CREATE, `${UUID}\n`)
  h.write(`devices/vfio_ap/matrix/${UUID}/assign_adapter`, '5\n')
  h.write(`devices/vfio_ap/matrix/${UUID}/assign_domain`, '4\n')
  h.startGuest('g1', UUID)
  h.changeLpar(api.parseLparCommands('add-adapter 9 CEX8 ep11\n'))
  h.faults.add({ op: 'write', path: 'bus/ap/aqmask', errno: 'EBUSY' })
  code(() => h.write('bus/ap/aqmask', '-4\n')) // the rule fires: one injection in the history
}

test('reset() brings back the whole booted host, with no fault rules, no fault history and rule ids from 1', t => {
  const h = new Host(defaultTopology(), { clockUsec: () => 0 })
  const booted = h.snapshot()
  dirty(h)
  t.is(h.faults.history().length, 1)
  h.reset()
  t.deepEqual(h.snapshot(), booted)
  t.deepEqual(h.faults.list(), [])
  t.deepEqual(h.faults.history(), [])
  t.deepEqual(h.guests(), [])
  t.is(h.read('bus/ap/apmask'), '0x' + 'f'.repeat(64) + '\n')
  t.is(h.faults.add({ op: 'read', path: 'x', errno: 'EIO' }).id, 1)
  // and again: a reset is repeatable
  dirty(h)
  h.reset()
  t.deepEqual(h.snapshot(), booted)
})

test('reset(state) goes to a snapshot and clears the faults; a snapshot that does not fit changes nothing', t => {
  const h = new Host(defaultTopology(), { clockUsec: () => 0 })
  h.write('bus/ap/apmask', '-6\n')
  const mid = h.snapshot()
  dirty(h)
  h.reset(mid)
  t.deepEqual(h.snapshot(), mid)
  t.deepEqual(h.faults.list(), [])

  dirty(h)
  const before = h.snapshot()
  const rules = h.faults.list()
  t.is(code(() => h.reset({ ...mid, bus: null } as unknown as HostState)), 'EINVAL')
  t.is(code(() => h.reset({ format: 'x' } as unknown as HostState)), 'EINVAL')
  t.deepEqual(h.snapshot(), before)
  t.deepEqual(h.faults.list(), rules)
})

test('a host booted from a snapshot resets to that snapshot, not to its topology', t => {
  const first = new Host(loadTopology('adapters: [{ id: 7, type: CEX7, mode: cca }]\nusage_domains: [1]\n'), { clockUsec: () => 0 })
  first.write('bus/ap/aqmask', '-1\n')
  const state = first.snapshot()
  const h = Host.fromState(state, { clockUsec: () => 0 })
  h.write('bus/ap/aqmask', '+1\n')
  h.reset()
  t.deepEqual(h.snapshot(), state)
})

test('the reset control file: 1 or a snapshot path; anything else is EINVAL with the reason in last_error', async t => {
  const files: Record<string, string> = {}
  const h = new Host(defaultTopology(), { clockUsec: () => 0, readFile: async p => { if (!(p in files)) throw new Error('ENOENT'); return files[p] } })
  const acode = async (p: Promise<unknown>): Promise<string> => { try { await p; return 'ok' } catch (e) { return (e as SysfsError).code } }
  const booted = h.snapshot()
  h.write('bus/ap/apmask', '-6\n')
  files['/snap.json'] = JSON.stringify(h.snapshot())
  const mid = h.snapshot()
  dirty(h)
  t.is(await h.writeAsync('kernel/debug/apsim/reset', '/snap.json\n'), 11)
  t.deepEqual(h.snapshot(), mid)
  t.deepEqual(h.faults.list(), [])
  h.write('kernel/debug/apsim/reset', '1\n')
  t.deepEqual(h.snapshot(), booted)
  for (const bad of ['2\n', '\n', 'snap.json\n', '/missing.json\n']) {
    h.write('bus/ap/apmask', '-6\n')
    t.is(await acode(h.writeAsync('kernel/debug/apsim/reset', bad)), 'EINVAL', bad)
    t.is(h.read('bus/ap/apmask'), '0xfd' + 'f'.repeat(62) + '\n', `${JSON.stringify(bad)} changed nothing`)
    t.regex(h.read('kernel/debug/apsim/last_error'), /^EINVAL: /)
    h.reset()
  }
  t.is(code(() => h.read('kernel/debug/apsim/reset')), 'EACCES')
})

test('add-adapter with an unknown type name lists the allowed types, as the topology check does', t => {
  const e = t.throws(() => api.parseLparCommands('add-adapter 9 CEX9 cca'), { instanceOf: SysfsError })
  t.is(e.message, 'EINVAL: add-adapter: type must be one of CEX4, CEX5, CEX6, CEX7, CEX8 or a raw type number, got "CEX9"')
  t.throws(() => loadTopology('adapters: [{ id: 9, type: CEX9, mode: cca }]'), { message: 'adapters[0].type: must be one of CEX4, CEX5, CEX6, CEX7, CEX8, got "CEX9"' })
  t.deepEqual(api.parseLparCommands('add-adapter 9 15 cca'), [{ op: 'add-adapter', adapter: { id: 9, mode: 'cca', rawType: 15 } }])
})

test('the package entry point exports the public API and nothing else', t => {
  t.deepEqual(Object.keys(api).sort(), [
    'ADAPTER_TYPES', 'DEFAULT_TOPOLOGY_YAML', 'Host', 'PROFILE_NAMES', 'SysfsError', 'TopologyError',
    'defaultTopology', 'loadTopology', 'parseLparCommands', 'topologyFrom'
  ])
  t.is(api.Host, Host)
  t.is(api.SysfsError, SysfsError)
  t.deepEqual(api.PROFILE_NAMES, ['5.10', '6.0', '6.8', '6.10', '6.12', 'newest'])
})
