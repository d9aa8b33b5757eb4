// kafkajs (pure JavaScript client) against drover-broker; driven by
// compat_kafkajs_test.go. Usage: node compat.js host:port
// Prints "KAFKAJS OK" and exits 0 when every check passes.
'use strict'
const { Kafka, logLevel, CompressionTypes, AssignerProtocol } = require('kafkajs')

const broker = process.argv[2]
const kafka = new Kafka({
  clientId: 'drover-compat-kafkajs',
  brokers: [broker],
  logLevel: process.env.DROVER_TEST_CLIENT_LOG ? logLevel.DEBUG : logLevel.NOTHING,
  retry: { initialRetryTime: 50, retries: 8 },
})

function assert(cond, msg) {
  if (!cond) throw new Error('assertion failed: ' + msg)
}
const sleep = ms => new Promise(r => setTimeout(r, ms))
async function until(what, fn, ms = 30000) {
  const end = Date.now() + ms
  for (;;) {
    if (await fn()) return
    if (Date.now() > end) throw new Error('timed out waiting for ' + what)
    await sleep(50)
  }
}

async function admin() {
  const a = kafka.admin()
  await a.connect()
  const created = await a.createTopics({
    waitForLeaders: true,
    topics: [{ topic: 'js-admin', numPartitions: 2, replicationFactor: 1, configEntries: [{ name: 'retention.ms', value: '3600000' }] }],
  })
  assert(created === true, 'createTopics returned ' + created)
  assert((await a.createTopics({ topics: [{ topic: 'js-admin', numPartitions: 2 }] })) === false, 'createTopics existing should return false')
  const topics = await a.listTopics()
  assert(topics.includes('js-admin'), 'listTopics ' + topics)
  const md = await a.fetchTopicMetadata({ topics: ['js-admin'] })
  assert(md.topics.length === 1 && md.topics[0].partitions.length === 2, 'fetchTopicMetadata ' + JSON.stringify(md))
  const cl = await a.describeCluster()
  assert(cl.brokers.length === 1 && cl.controller === 0 && cl.clusterId, 'describeCluster ' + JSON.stringify(cl))
  const cfg = await a.describeConfigs({ includeSynonyms: false, resources: [{ type: 2, name: 'js-admin', configNames: ['retention.ms'] }] })
  const entry = cfg.resources[0].configEntries.find(e => e.configName === 'retention.ms')
  assert(entry && entry.configValue === '3600000' && !entry.isDefault, 'describeConfigs ' + JSON.stringify(cfg))
  await a.deleteTopics({ topics: ['js-admin'] })
  await until('js-admin deleted', async () => !(await a.listTopics()).includes('js-admin'))
  await a.disconnect()
}

async function produceConsume() {
  const a = kafka.admin()
  await a.connect()
  await a.createTopics({ waitForLeaders: true, topics: [{ topic: 'js-pc', numPartitions: 3 }] })
  const p = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
  await p.connect()
  const before = Date.now() - 1000
  for (const compression of [CompressionTypes.None, CompressionTypes.GZIP]) {
    const res = await p.send({
      topic: 'js-pc', acks: -1, compression,
      messages: Array.from({ length: 30 }, (_, i) => ({ key: 'k' + i, value: `c${compression}-v${i}`, headers: { h: String(i) } })),
    })
    assert(res.every(r => r.errorCode === 0), 'send ' + JSON.stringify(res))
  }
  await p.disconnect()
  const offs = await a.fetchTopicOffsets('js-pc')
  assert(offs.reduce((s, o) => s + Number(o.high), 0) === 60 && offs.every(o => o.low === '0'), 'fetchTopicOffsets ' + JSON.stringify(offs))
  const byTime = await a.fetchTopicOffsetsByTimestamp('js-pc', before)
  assert(byTime.every(o => o.offset === '0'), 'fetchTopicOffsetsByTimestamp ' + JSON.stringify(byTime))
  const c = kafka.consumer({ groupId: 'js-pc-reader', sessionTimeout: 6000, heartbeatInterval: 300 })
  await c.connect()
  await c.subscribe({ topic: 'js-pc', fromBeginning: true })
  const got = new Map()
  await c.run({
    eachMessage: async ({ message }) => {
      const v = message.value.toString()
      assert(message.key.toString() === 'k' + v.split('-v')[1] && message.headers.h.toString() === v.split('-v')[1], 'message ' + v)
      got.set(v, (got.get(v) || 0) + 1)
    },
  })
  await until('60 messages consumed', () => got.size === 60)
  await c.disconnect()
  await a.disconnect()
}

async function groups() {
  const topic = 'js-group', groupId = 'js-g'
  const a = kafka.admin()
  await a.connect()
  await a.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: 4 }] })
  const p = kafka.producer()
  await p.connect()
  const send = async (prefix, n) => p.send({ topic, messages: Array.from({ length: n }, (_, i) => ({ key: prefix + i, value: prefix + i })) })
  await send('a', 40)

  const seen = {}
  const members = []
  const start = async name => {
    const c = kafka.consumer({ groupId, sessionTimeout: 6000, heartbeatInterval: 300, rebalanceTimeout: 5000, retry: { retries: 8, initialRetryTime: 50 } })
    await c.connect()
    await c.subscribe({ topic, fromBeginning: true })
    seen[name] = new Set()
    await c.run({ autoCommitInterval: 100, eachMessage: async ({ message }) => { seen[name].add(message.value.toString()) } })
    members.push(c)
    return c
  }
  const total = prefix => Object.values(seen).reduce((n, s) => n + [...s].filter(v => v.startsWith(prefix)).length, 0)

  const c1 = await start('A')
  await until('A reads 40', () => seen.A.size === 40)
  const c2 = await start('B')
  await until('two stable members', async () => {
    const d = (await a.describeGroups([groupId])).groups[0]
    if (d.state !== 'Stable' || d.members.length !== 2) return false
    const parts = d.members.flatMap(m => {
      const asg = AssignerProtocol.MemberAssignment.decode(m.memberAssignment)
      return asg ? (asg.assignment[topic] || []) : []
    })
    return parts.sort().join(',') === '0,1,2,3'
  })
  const d = (await a.describeGroups([groupId])).groups[0]
  assert(d.protocolType === 'consumer' && d.protocol === 'RoundRobinAssigner', 'describeGroups ' + JSON.stringify(d))
  await send('b', 40)
  await until('A+B read the next 40', () => total('b') === 40)
  assert(seen.B.size > 0, 'B read nothing')
  await c1.disconnect()
  await c2.disconnect()

  const groupsList = await a.listGroups()
  assert(groupsList.groups.some(g => g.groupId === groupId && g.protocolType === 'consumer'), 'listGroups ' + JSON.stringify(groupsList))
  const committed = await a.fetchOffsets({ groupId, topics: [topic] })
  const sum = committed[0].partitions.reduce((s, x) => s + Number(x.offset), 0)
  assert(sum === 80, 'fetchOffsets ' + JSON.stringify(committed))

  await send('c', 20)
  await start('C')
  await until('C reads 20', () => seen.C.size >= 20)
  await sleep(300)
  assert([...seen.C].every(v => v.startsWith('c')), 'C re-read old messages: ' + [...seen.C].filter(v => !v.startsWith('c')))
  await members[2].disconnect()
  await p.disconnect()
  const del = await a.deleteGroups([groupId])
  assert(del[0].errorCode === 0, 'deleteGroups ' + JSON.stringify(del))
  await a.disconnect()
}

;(async () => {
  for (const [name, fn] of [['admin', admin], ['produce/consume', produceConsume], ['groups', groups]]) {
    try {
      await fn()
      console.log('ok', name)
    } catch (e) {
      console.error('FAIL', name, e && e.stack || e)
      process.exit(1)
    }
  }
  console.log('KAFKAJS OK')
  process.exit(0)
})()
