/**
 * Secure Execution guests (ap_queue.c, ap_bus.h): in a KVM guest running under Secure
 * Execution whose machine offers the APSB facility, every queue has `se_bind` and
 * `se_associate`. A queue the guest receives is "available for binding"; binding (BAPQ)
 * makes an accelerator queue usable, and an EP11 queue usable once it is also associated
 * (AAPQ) with a secret of the guest. CCA queues cannot be bound.
 *
 * What changes the state: `echo 0 > se_bind` resets the queue with the F bit (RAPQ F=1), which
 * drops binding and association. A plain reset (`reset`) and a driver unbind/rebind reset
 * without the F bit and keep them. A queue that leaves the guest (hot unplug) comes back
 * available for binding. The association completes at once in the simulator (on a machine it
 * is asynchronous and `association pending` may be read in between).
 */
import { fail } from '../errors.js'
import { kstrtobool, kstrtoull } from '../parse.js'
import type { AttrDecl } from '../sysfs.js'
import type { BindState, Queue } from './device.js'

/** ASSOC_IDX_INVALID: association indexes are 0..0xffff. */
export const ASSOC_IDX_INVALID = 0x10000

/** ap_q_supports_bind / ap_q_supports_assoc: EP11 and accelerator queues bind, EP11 ones associate. */
const supportsBind = (q: Queue): boolean => q.card.mode === 'ep11' || q.card.mode === 'accel'
const supportsAssoc = (q: Queue): boolean => q.card.mode === 'ep11'

/** ap_sb_available() && is_prot_virt_guest(): the attribute group every queue gets at creation (6.4 on). */
const seQueues = (q: Queue): boolean => q.card.bus.seGuest && q.card.bus.profile.apFeatures64 && q.card.bus.qci.features.has('APSB')

const BS_CODE: Record<BindState, number> = { usable: 0, 'usable-no-secure-key': 1, available: 2, unusable: 3 }

/**
 * TAPQ's facility word as a queue's `ap_functions` shows it: in a Secure Execution guest its
 * BS field (bits 16-17, mask 0x0000c000) is the queue's bind state, which lszcrypt's SESTAT
 * column decodes; elsewhere the word as the machine gives it.
 */
export const queueFacility = (q: Queue): number =>
  seQueues(q) ? ((q.card.functions & ~0xc000) | (BS_CODE[q.seBind] << 14)) >>> 0 : q.card.functions

/** TAPQ answers with a non-zero response code for a deconfigured or checkstopped queue. */
function tapqOk (q: Queue, what: string): void {
  if (!q.config || !q.card.config || q.chkstop || q.card.chkstop) fail('EIO', `${what}: ${q.name} is deconfigured or checkstopped`)
}

const isBound = (bs: BindState): boolean => bs === 'usable' || bs === 'usable-no-secure-key'

export function storeSeBind (q: Queue, buf: string): void {
  if (!supportsBind(q)) fail('EINVAL', `se_bind: ${q.name} is a CCA queue, which cannot be bound`)
  const bind = kstrtobool(buf, q.card.bus.profile.boolEnableDisable)
  if (!bind) {
    // Flush and reset with the F bit: binding and association go.
    q.seBind = 'available'
    q.assocIdx = undefined
    q.initialise()
    return
  }
  tapqOk(q, 'se_bind')
  if (q.seBind !== 'available') fail('EINVAL', `se_bind: ${q.name} is not available for binding (${q.seBind})`)
  if (q.smState !== 'idle') fail('EBUSY', `se_bind: ${q.name} is being reset`)
  q.seBind = supportsAssoc(q) ? 'usable-no-secure-key' : 'usable'
  q.assocIdx = undefined
}

export function storeSeAssociate (q: Queue, buf: string): void {
  if (!supportsAssoc(q)) fail('EINVAL', `se_associate: ${q.name} is not an EP11 queue`)
  const v = kstrtoull(buf)
  if (v > 0xffffffffn) fail('ERANGE', `se_associate: ${v} does not fit an unsigned int`)
  if (v >= BigInt(ASSOC_IDX_INVALID)) fail('EINVAL', `se_associate: index ${v} is not below ${ASSOC_IDX_INVALID}`)
  tapqOk(q, 'se_associate')
  if (q.seBind !== 'usable-no-secure-key') fail('EINVAL', `se_associate: ${q.name} is not bound and unassociated (${q.seBind})`)
  if (q.smState !== 'idle') fail('EBUSY', `se_associate: ${q.name} is not idle`)
  q.assocIdx = Number(v)
  q.seBind = 'usable'
}

export const seQueueAttrs: Array<AttrDecl<Queue>> = [
  {
    name: 'se_bind',
    mode: 0o644,
    visible: seQueues,
    show: q => !supportsBind(q) ? '-\n' : isBound(q.seBind) ? 'bound\n' : 'unbound\n',
    store: storeSeBind
  },
  {
    name: 'se_associate',
    mode: 0o644,
    visible: seQueues,
    show: q => {
      if (!supportsAssoc(q)) return '-\n'
      if (q.seBind === 'usable') return q.assocIdx === undefined ? fail('EIO', `se_associate: ${q.name} is usable without an association index`) : `associated ${q.assocIdx}\n`
      return q.seBind === 'usable-no-secure-key' && q.assocIdx !== undefined ? 'association pending\n' : 'unassociated\n'
    },
    store: storeSeAssociate
  }
]
