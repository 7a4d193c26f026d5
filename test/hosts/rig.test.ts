// Proves the hosts rig's parsing of `ss -tno` output (the retransmission state of TCP connections that a
// partition left behind) and of its timer values, from lines ss printed on this machine.
import { describe, expect, it } from 'vitest'
import { parseSs, ssDurationMs } from './rig.js'

describe('hosts rig: ss parsing', () => {
  it('reads ss timer values', () => {
    expect(['240ms', '12sec', '9.616ms', '1min', '2min5sec', '119min', 'x'].map(ssDurationMs)).toEqual([
      240,
      12_000,
      9_616,
      60_000,
      125_000,
      7_140_000,
      undefined,
    ])
  })

  it('reads connections to rig addresses with their pending retransmissions', () => {
    const text = [
      '0      3044   10.213.0.3:37522 10.213.0.1:7600 timer:(on,12sec,6)',
      '0      0      10.213.0.3:56252 10.213.0.2:7600 timer:(keepalive,119min,0)',
      '0      0      127.0.0.1:1 127.0.0.1:2',
      '',
    ].join('\n')
    expect(parseSs('c', text)).toEqual([
      {
        node: 'c',
        local: '10.213.0.3:37522',
        remoteAddress: '10.213.0.1',
        sendQueueBytes: 3044,
        retransmits: 6,
        retransmitInMs: 12_000,
      },
      {
        node: 'c',
        local: '10.213.0.3:56252',
        remoteAddress: '10.213.0.2',
        sendQueueBytes: 0,
        retransmits: 0,
        retransmitInMs: undefined,
      },
    ])
  })
})
