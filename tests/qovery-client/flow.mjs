// Drives Spinoff's database-clone family with Qovery's official TypeScript
// client (qovery-typescript-axios), unchanged: organization, project,
// environments, a database, its clone into another environment, the clone's
// status until DEPLOYED, an error, and the deletes. Only loading and reading
// the data (the data API) and firing the worker (which cron does under Spin)
// are plain HTTP calls.
//
// Env: SPINOFF_URL, SPINOFF_TOKEN (a tenant token), SPINOFF_ADMIN_TOKEN.
// Prints one JSON object; exits non-zero (with the error on stderr) when any
// client call fails unexpectedly.
import qovery from 'qovery-typescript-axios'

const {
  Configuration,
  OrganizationMainCallsApi,
  ProjectsApi,
  ProjectMainCallsApi,
  EnvironmentsApi,
  EnvironmentMainCallsApi,
  DatabasesApi,
  DatabaseMainCallsApi,
} = qovery

const base = process.env.SPINOFF_URL
const token = process.env.SPINOFF_TOKEN
const admin = process.env.SPINOFF_ADMIN_TOKEN

// What a Qovery user writes, with Spinoff's URL and a Spinoff tenant token.
const configuration = new Configuration({basePath: base, apiKey: `Token ${token}`})
const organizations = new OrganizationMainCallsApi(configuration)
const projects = new ProjectsApi(configuration)
const project = new ProjectMainCallsApi(configuration)
const environments = new EnvironmentsApi(configuration)
const environment = new EnvironmentMainCallsApi(configuration)
const databases = new DatabasesApi(configuration)
const database = new DatabaseMainCallsApi(configuration)

// Not Qovery calls: the data API and the worker.
async function http(method, path, auth, body) {
  const r = await fetch(`${base}${path}`, {method, headers: {Authorization: auth}, body})
  const text = await r.text()
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${text}`)
  return text
}
const exportRows = async (id) =>
  (await http('GET', `/data/v1/resources/qovery:${id}/export`, `Bearer ${token}`))
    .split('\n')
    .filter((l) => l.trim() !== '')
    .sort()
const tick = () => http('POST', '/internal/worker/tick', `Bearer ${admin}`)

// An expected failure: the axios error the client throws, with Qovery's body.
async function failure(call) {
  try {
    await call()
  } catch (e) {
    if (!e.isAxiosError || !e.response) throw e
    return {status: e.response.status, body: e.response.data, axios: e.name}
  }
  throw new Error('the call was expected to fail')
}

const out = {}
const {data: orgList} = await organizations.listOrganization()
const org = orgList.results[0]
out.organization = org
out.organizationGet = (await organizations.getOrganization(org.id)).data

const {data: proj} = await projects.createProject(org.id, {name: 'shop', description: 'the shop'})
out.project = proj
out.projects = (await projects.listProject(org.id)).data.results.map((p) => p.name)
out.duplicateProject = await failure(() => projects.createProject(org.id, {name: 'SHOP'}))

const {data: production} = await environments.createEnvironment(proj.id, {name: 'production', mode: 'PRODUCTION'})
const {data: staging} = await environments.createEnvironment(proj.id, {name: 'staging', mode: 'STAGING'})
out.environments = (await environments.listEnvironment(proj.id)).data.results.map((e) => e.name)
out.environmentGet = (await environment.getEnvironment(staging.id)).data
out.projectGet = (await project.getProject(proj.id)).data

const {data: db} = await databases.createDatabase(production.id, {
  name: 'orders',
  type: 'POSTGRESQL',
  version: '16',
  mode: 'CONTAINER',
  accessibility: 'PRIVATE',
  cpu: 500,
  memory: 512,
  storage: 10,
})
out.database = db
out.databaseStatus = (await database.getDatabaseStatus(db.id)).data

const records = []
for (let i = 0; i < 1500; i++) {
  records.push(JSON.stringify({collection: 'public.orders', key: `${i}`, body: {id: i, total: i * 3}}))
}
for (let i = 0; i < 300; i++) {
  records.push(JSON.stringify({collection: 'public.customers', key: `c${i}`, body: {id: i, name: `customer ${i}`}}))
}
await http('POST', `/data/v1/resources/qovery:${db.id}/import`, `Bearer ${token}`, records.join('\n') + '\n')
const sourceRows = await exportRows(db.id)

const {data: clone} = await databases.cloneDatabase(db.id, {name: 'orders-staging', environment_id: staging.id})
out.clone = clone
// A write to the source after the clone started: never in the clone.
await http('PUT', `/data/v1/resources/qovery:${db.id}/collections/public.orders/records/late`, `Bearer ${token}`, '{}')
out.sourceRecordsAfter = (await exportRows(db.id)).length
const states = []
let status
for (let i = 0; i < 300; i++) {
  status = (await database.getDatabaseStatus(clone.id)).data
  if (states[states.length - 1] !== status.state) states.push(status.state)
  if (status.state === 'DEPLOYED' || status.state === 'DEPLOYMENT_ERROR') break
  await tick()
}
out.states = states
out.cloneStatus = status
out.cloneGet = (await database.getDatabase(clone.id)).data
out.stagingDatabases = (await databases.listDatabase(staging.id)).data.results.map((d) => d.name)
const cloneRows = await exportRows(clone.id)
out.sourceRecords = sourceRows.length
out.cloneRecords = cloneRows.length
out.dataEqual = JSON.stringify(sourceRows) === JSON.stringify(cloneRows)

out.notFound = await failure(() => database.getDatabase('00000000-0000-4000-8000-000000000000'))
out.badRequest = await failure(() => databases.cloneDatabase(db.id, {name: 'no-environment'}))

await database.deleteDatabase(clone.id)
out.deletedDatabase = await failure(() => database.getDatabase(clone.id))
await environment.deleteEnvironment(staging.id)
out.deletedEnvironment = await failure(() => environment.getEnvironment(staging.id))
out.environmentsAfter = (await environments.listEnvironment(proj.id)).data.results.map((e) => e.name)
await project.deleteProject(proj.id)
out.deletedProject = await failure(() => project.getProject(proj.id))
out.projectDatabaseGone = await failure(() => database.getDatabase(db.id))
out.projectsAfter = (await projects.listProject(org.id)).data.results.map((p) => p.name)

console.log(JSON.stringify(out))
