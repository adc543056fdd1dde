/** The hosts the bench mounts, as topology-file data (JSON is YAML). */

/** 256 adapters x 256 usage domains: 65,536 queues, QCI max ids 255 (the largest AP bus there is). */
export function fullSizeTopology (): Record<string, unknown> {
  const ids = Array.from({ length: 256 }, (_, i) => i)
  return {
    host: 'lpar',
    qci: { features: ['APSC', 'APXA', 'QACT', 'RC8A'], max_adapter_id: 255, max_domain_id: 255 },
    adapters: ids.map(id => ({ id, type: 'CEX8', mode: (['cca', 'ep11', 'accel'] as const)[id % 3] })),
    usage_domains: ids,
    control_domains: ids
  }
}

export const ALL_ONES = '0x' + 'f'.repeat(64)
export const ALL_ZEROS = '0x' + '0'.repeat(64)

/** A stable UUID for mdev number i. */
export const uuidOf = (i: number): string => `${i.toString(16).padStart(8, '0')}-0000-4000-8000-${(0xbe7c4000000 + i).toString(16).padStart(12, '0')}`
