import {
  createMeshNode,
  defaultConfig,
  generateSigningKey,
  type MeshNode,
  requestCertificate,
} from '../src/index.js'

/**
 * Joins the mesh with a ticket and starts an embedded node with one custom action and one singleton
 * duty: `onDuty(true, epoch)` when this appliance becomes its zone's authority, `onDuty(false, …)` when not.
 */
export async function startAppliance(
  ticket: string,
  onDuty: (held: boolean, epoch: number) => void = () => {},
  listen = '/ip4/127.0.0.1/tcp/0',
): Promise<MeshNode> {
  const key = generateSigningKey()
  const joined = await requestCertificate({ key, ticket }) // checks the mesh's fingerprint before sending
  const node = await createMeshNode({
    node: { key, certificate: joined.certificate },
    caPublicKey: joined.caPublicKey,
    revocations: joined.revocationList,
    config: defaultConfig('lan', {
      listen: [listen],
      bootstrap: [...joined.bootstrap],
      policy: [{ actions: ['modem-status'], roles: ['operator'] }], // who may run it, besides built-ins
    }),
  })
  node.registerAction('modem-status', async ({ signal }) => {
    signal.throwIfAborted()
    return { exitCode: 0, output: 'modem: up, 2 clients\n' }
  })
  node.onAuthority(node.zone, ({ held, epoch }) => onDuty(held, epoch)) // epoch = fencing token
  await node.start()
  return node
}
