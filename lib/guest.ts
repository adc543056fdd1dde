/**
 * A guest's own kernel: every running guest (QEMU on a vfio_ap mdev) has a simulated host of
 * its own — a KVM guest, or a Secure Execution guest, whose machine is the guest's APCB with
 * the host's adapters behind it. The host's hot plug reaches it as the hypervisor's change of
 * that machine followed by a bus scan in the guest, as a real guest's AP bus notices it; what
 * the guest writes in its own sysfs (`online`, `ap_domain`, masks, `se_bind`, ...) stays in the
 * guest and never changes the host.
 */
import type { Lpar } from './ap/lpar.js'
import { Host, type HostState } from './host.js'
import type { QciFeature, Topology } from './topology.js'
import type { Apcb } from './vfio/vfio-ap.js'

/** What a snapshot keeps of a running guest's kernel. */
export interface GuestState {
  name: string
  /** Secure Execution guest. */
  se: boolean
  /** The mdev's `guestUpdates` the guest's machine last followed. */
  updates: number
  /** The guest's own host, as `Host.snapshot()` gives it. */
  state: HostState
}

/**
 * The guest's machine: the APCB's adapters (as the host's machine has them), usage and control
 * domains; APSB for a Secure Execution guest, whose queues then offer se_bind/se_associate.
 */
export function guestTopology (lpar: Lpar, apcb: Apcb, se: boolean): Topology {
  const features: QciFeature[] = [...lpar.features].filter(f => f !== 'APSB')
  if (se) features.push('APSB')
  return {
    kernel: 'newest',
    host: 'kvm',
    secureExecution: se,
    qci: { available: true, features, maxAdapterId: lpar.na, maxDomainId: lpar.nd },
    interrupts: true,
    adapters: apcb.apm.ids().map(a => lpar.adapters.get(a)).filter(a => a !== undefined).map(a => ({ ...a })),
    usageDomains: apcb.aqm.ids(),
    controlDomains: apcb.adm.ids(),
    kernelParams: {},
    modules: ['zcrypt_cex4']
  }
}

export class GuestSystem {
  readonly host: Host

  private constructor (readonly name: string, readonly se: boolean, public updates: number, host: Host) {
    this.host = host
  }

  /** The guest boots on its APCB. */
  static boot (name: string, se: boolean, lpar: Lpar, apcb: Apcb, updates: number): GuestSystem {
    return new GuestSystem(name, se, updates, new Host(guestTopology(lpar, apcb, se)))
  }

  static fromState (st: GuestState): GuestSystem {
    if (typeof st.name !== 'string' || typeof st.se !== 'boolean' || !Number.isInteger(st.updates)) throw new Error(`guest state ${JSON.stringify(st.name)}: name, se and updates are required`)
    return new GuestSystem(st.name, st.se, st.updates, Host.fromState(st.state))
  }

  /** Follows the host's change of the guest's APCB: the guest's machine changes, its AP bus rescans. */
  follow (lpar: Lpar, apcb: Apcb, updates: number): void {
    const t = guestTopology(lpar, apcb, this.se)
    const machine = (m: Topology): string => JSON.stringify([m.adapters, m.usageDomains, m.controlDomains])
    if (updates === this.updates && machine(t) === machine(this.host.bus.lpar.topology(this.host.topology))) return
    this.updates = updates
    this.host.reconfigure(t)
  }

  state (): GuestState {
    return { name: this.name, se: this.se, updates: this.updates, state: this.host.snapshot() }
  }
}
