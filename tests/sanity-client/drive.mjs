// Drives Spinoff's dataset-copy family with the official @sanity/client,
// unchanged. Env: SPINOFF_URL, SPINOFF_TOKEN, SANITY_PROJECT, and
// SPINOFF_API_HOST: the API host for the client's default
// useProjectHostname (the project in the host name, reached through the
// test's HTTP_PROXY). Prints one JSON object with what each call returned;
// the Rust test checks it.
import {createClient} from '@sanity/client'

const client = createClient({
  projectId: process.env.SANITY_PROJECT,
  dataset: 'production',
  apiHost: process.env.SPINOFF_URL,
  useProjectHostname: false,
  apiVersion: '2021-06-07',
  token: process.env.SPINOFF_TOKEN,
  useCdn: false,
})

const out = {}
out.before = await client.datasets.list()
out.created = await client.datasets.create('staging', {aclMode: 'private'})
out.after = await client.datasets.list()
out.copy = await client.request({
  method: 'PUT',
  uri: `/projects/${process.env.SANITY_PROJECT}/datasets/production/copy`,
  body: {targetDataset: 'production-copy', skipHistory: false},
})
// A copy is a copy-on-write branch by default: completed at the first read.
out.firstJob = await client.request({uri: `/jobs/${out.copy.jobId}`})
for (let i = 0; i < 200; i++) {
  out.job = await client.request({uri: `/jobs/${out.copy.jobId}`})
  if (out.job.state === 'completed' || out.job.state === 'failed') break
  await new Promise((r) => setTimeout(r, 50))
}
out.final = await client.datasets.list()

// The client's default: the project in the host name.
const byHost = createClient({
  projectId: process.env.SANITY_PROJECT,
  dataset: 'production',
  apiHost: process.env.SPINOFF_API_HOST,
  apiVersion: '2025-02-19',
  token: process.env.SPINOFF_TOKEN,
  useCdn: false,
})
out.byHostList = await byHost.datasets.list()
out.created1 = await byHost.create({_id: 'doc-1', _type: 'post', title: 'one'})
out.tx = await byHost
  .transaction()
  .createOrReplace({_id: 'doc-2', _type: 'post', title: 'two'})
  .createIfNotExists({_id: 'doc-1', _type: 'post', title: 'ignored'})
  .patch('doc-1', (p) => p.set({title: 'one, patched', 'meta.seen': true}).unset(['nothing']))
  .commit()
out.doc1 = await byHost.getDocument('doc-1')
out.p7 = await byHost.getDocument('p7')
out.missing = (await byHost.getDocument('nope')) ?? null
out.docs = await byHost.getDocuments(['doc-2', 'nope', 'p3'])
out.deleted = await byHost.delete('doc-2')
out.afterDelete = (await byHost.getDocument('doc-2')) ?? null
try {
  await byHost.create({_id: 'doc-1', _type: 'post'})
  out.duplicate = 'no error'
} catch (e) {
  out.duplicate = {statusCode: e.statusCode, message: e.message}
}
try {
  await byHost.withConfig({projectId: 'not-mine'}).datasets.list()
  out.foreign = 'no error'
} catch (e) {
  out.foreign = {statusCode: e.statusCode, message: e.message}
}
console.log(JSON.stringify(out))
