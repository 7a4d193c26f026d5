/**
 * Proves the per-node policy allows exactly what its rules say: a table of operators, roles, zones and
 * actions against the default policy and a custom one, shell actions only when named literally, and
 * policy parsing that reports every problem at once.
 */
import { describe, expect, it } from 'vitest'
import type { Certificate, Role } from '../../src/ca/types.js'
import {
  type AuthorizationPolicy,
  authorize,
  DEFAULT_POLICY,
  PolicyError,
  parsePolicy,
} from '../../src/gossip/authorize.js'

const operator = (name: string, roles: Role[] = ['operator']): Certificate => ({
  version: 2,
  serial: '00',
  name,
  publicKey: new Uint8Array(32),
  peerId: 'p',
  zone: 'core',
  roles,
  notBeforeMs: 0,
  notAfterMs: 1,
  issuer: new Uint8Array(32),
})

const custom: AuthorizationPolicy = parsePolicy({
  rules: [
    { actions: ['deploy*'], operators: ['ci-*'], zones: ['web'] },
    { actions: ['*'], operators: ['root'] },
    { actions: ['shell'], operators: ['alice'], zones: ['db'] },
    { actions: ['restart'], roles: ['ca'] },
  ],
})

describe('authorize', () => {
  it.each<[string, AuthorizationPolicy, string, Certificate, string, boolean]>([
    ['default: uptime', DEFAULT_POLICY, 'uptime', operator('alice'), 'web', true],
    ['default: ping', DEFAULT_POLICY, 'ping', operator('alice'), 'db', true],
    ['default: facts', DEFAULT_POLICY, 'facts', operator('bob'), 'db', true],
    ['default: custom action', DEFAULT_POLICY, 'deploy', operator('alice'), 'web', false],
    ['default: shell', DEFAULT_POLICY, 'shell', operator('alice'), 'web', false],
    ['operator glob + zone', custom, 'deploy-app', operator('ci-main'), 'web', true],
    ['operator glob, other zone', custom, 'deploy-app', operator('ci-main'), 'db', false],
    ['other operator', custom, 'deploy-app', operator('alice'), 'web', false],
    ['wildcard rule', custom, 'anything', operator('root'), 'db', true],
    ['wildcard never allows shell', custom, 'shell', operator('root'), 'db', false],
    ['wildcard never allows sh', custom, 'sh', operator('root'), 'db', false],
    ['shell named literally', custom, 'shell', operator('alice'), 'db', true],
    ['shell named, other zone', custom, 'shell', operator('alice'), 'web', false],
    ['role rule', custom, 'restart', operator('x', ['operator', 'ca']), 'web', true],
    ['role rule, role missing', custom, 'restart', operator('x'), 'web', false],
    ['empty policy', { rules: [] }, 'uptime', operator('alice'), 'web', false],
  ])('%s', (_label, policy, action, op, nodeZone, allow) => {
    const decision = authorize(policy, { action, operator: op, nodeZone })
    expect(decision.allow).toBe(allow)
    if (!decision.allow) expect(decision.reason).toContain(`'${action}'`)
  })

  it('reports the matching rule', () => {
    expect(authorize(custom, { action: 'x', operator: operator('root'), nodeZone: 'z' })).toMatchObject({
      allow: true,
      ruleIndex: 1,
    })
  })
})

describe('parsePolicy', () => {
  it('reports every problem at once', () => {
    try {
      parsePolicy({
        rules: [
          { actions: [] },
          { actions: ['x'], roles: ['king'] },
          { actions: ['y'], colour: 'red' },
          'nope',
        ],
      })
      expect.unreachable()
    } catch (err) {
      expect(err).toBeInstanceOf(PolicyError)
      expect((err as PolicyError).problems).toHaveLength(4)
    }
  })

  it.each([null, {}, { rules: 'x' }])('refuses %j', value => {
    expect(() => parsePolicy(value)).toThrow(PolicyError)
  })
})
