// Drives Spinoff's dataset-copy family with the official @sanity/client,
// unchanged. Env: SPINOFF_URL, SPINOFF_TOKEN, SANITY_PROJECT. Prints one JSON
// object with what each call returned; the Rust test checks it.
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
for (let i = 0; i < 200; i++) {
  out.job = await client.request({uri: `/jobs/${out.copy.jobId}`})
  if (out.job.state === 'completed' || out.job.state === 'failed') break
  await new Promise((r) => setTimeout(r, 50))
}
out.final = await client.datasets.list()
console.log(JSON.stringify(out))
