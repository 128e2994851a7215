/**
 * The local service stack: nats-server (JetStream), redis-server (AOF) and PostgreSQL, on loopback
 * only, with their data under <root>/.data (git-ignored).
 *
 *   tsx scripts/stack.ts up       start what is not running yet (left running, detached); print the URLs
 *   tsx scripts/stack.ts down     stop every server whose pid file is in .data (ours, never the user's)
 *   tsx scripts/stack.ts status   print which servers answer (exit 3 when one does not)
 *
 * The test run's global setup calls stackUp() and, at the end, stackDown(started), so it stops only
 * what it started itself.
 *
 * Rules this file keeps:
 * - A service named by NATS_URL / REDIS_URL / DATABASE_URL belongs to the user: it is never installed,
 *   started or stopped here; its URL is passed through.
 * - A server already answering on our port is reused: starting twice in a row starts nothing.
 * - Servers are spawned fully detached (own session, no stdio), so a Ctrl-C in the parent's terminal
 *   does not kill them before the parent stops them itself, in order.
 * - Every wait is bounded by a named maximum (…MsMax); past it we fail loudly or SIGKILL.
 * - Only node: built-ins; child processes get argument arrays, never a shell command string.
 */
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export type ServiceName = 'nats' | 'redis' | 'postgres';

export type StackInfo = {
  natsUrl: string;
  redisUrl: string;
  databaseUrl: string;
  testDatabaseUrl: string;
  /** The services this call started (the ones stackDown(started) will stop). */
  started: ServiceName[];
  dataDir: string;
};

type Log = (line: string) => void;

// ---------------------------------------------------------------------------------------------
// Layout and limits.

const rootDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dataDir = path.join(rootDir, '.data');
const host = '127.0.0.1';

const natsPort = 24222;
const natsMonitorPort = 28222;
const natsDir = path.join(dataDir, 'nats');
const natsPidFile = path.join(natsDir, 'nats.pid');
const natsLogFile = path.join(natsDir, 'nats.log');

const redisPort = 26379;
const redisDir = path.join(dataDir, 'redis');
const redisPidFile = path.join(redisDir, 'redis.pid');
const redisLogFile = path.join(redisDir, 'redis.log');

const pgPort = 25432;
const pgHome = path.join(dataDir, 'pg');
/** The cluster directory, or (root whose checkout the postgres user cannot reach) a symlink to it. */
const pgDataLink = path.join(pgHome, 'data');
/** Our settings, included from postgresql.conf and rewritten at every start. */
const pgConfName = 'peakpay.conf';
/** sun_path holds 108 bytes; stay well below with the socket file name appended. */
const pgSocketPathLengthMax = 100;

const urls = {
  nats: `nats://${host}:${natsPort}`,
  redis: `redis://${host}:${redisPort}`,
  database: `postgres://peakpay@${host}:${pgPort}/peakpay`,
  testDatabase: `postgres://peakpay@${host}:${pgPort}/peakpay_test`,
};

const ports: Record<ServiceName, number> = { nats: natsPort, redis: redisPort, postgres: pgPort };
const envOverride: Record<ServiceName, string> = { nats: 'NATS_URL', redis: 'REDIS_URL', postgres: 'DATABASE_URL' };
const aptPackage: Record<ServiceName, string> = { nats: 'nats-server', redis: 'redis-server', postgres: 'postgresql' };
const allServices: readonly ServiceName[] = ['nats', 'redis', 'postgres'];

/** From spawn until the server answers on its port (pg_ctl -w gets the same budget). */
const startWaitMsMax = 30_000;
/**
 * Redis answers only once it has replayed its AOF: up to ~1 GB of it (auto-aof-rewrite-min-size)
 * plus the base snapshot, ~60 MB/s on a small machine. A server that dies meanwhile is reported at
 * once, whatever this says.
 */
const redisStartWaitMsMax = 120_000;
/** From SIGTERM (or pg_ctl stop) until the process is gone; then SIGKILL. */
const stopWaitMsMax = 15_000;
/** After SIGKILL, until the process is gone; past it we report failure. */
const killWaitMsMax = 5_000;
/** One probe of a port: connect plus greeting. Loopback answers in well under a millisecond. */
const probeWaitMsMax = 1_000;
/** Any helper command (initdb, psql, runuser test, ...). */
const commandWaitMsMax = 120_000;
/** apt-get update / install on a slow mirror. */
const installWaitMsMax = 15 * 60_000;
const pollIntervalMs = 100;

const defaultLog: Log = (line) => process.stderr.write(`stack: ${line}\n`);

// ---------------------------------------------------------------------------------------------
// Small helpers.

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function isRoot(): boolean {
  return process.getuid?.() === 0;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The last lines of a log file, for error messages ("" when unreadable). */
function tail(file: string, lines = 15): string {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

type RunOptions = {
  /** Run as the postgres OS user (via runuser) when we are root: PostgreSQL refuses to run as root. */
  asPostgres?: boolean;
  input?: string;
  /** Own session: for pg_ctl start, so the postmaster never shares our terminal's process group. */
  detached?: boolean;
  /** Pass the output straight through (apt-get) instead of capturing it. */
  inheritOutput?: boolean;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
};

type RunResult = { code: number; output: string };

/** Run a program with an argument array (no shell), bounded by a timeout. Resolves with its exit code. */
function run(file: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const asPostgres = (opts.asPostgres ?? false) && isRoot();
  const command = asPostgres ? 'runuser' : file;
  const argv = asPostgres ? ['-u', 'postgres', '--', file, ...args] : args;
  const timeoutMs = opts.timeoutMs ?? commandWaitMsMax;
  return new Promise((resolve, reject) => {
    const child = spawn(command, argv, {
      // The postgres user may not be able to enter our cwd (e.g. under /root); initdb needs a cwd.
      cwd: asPostgres ? '/' : rootDir,
      detached: opts.detached ?? false,
      env: opts.env ?? process.env,
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', opts.inheritOutput ? 'inherit' : 'pipe', opts.inheritOutput ? 'inherit' : 'pipe'],
    });
    let output = '';
    child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${path.basename(file)} ${args.join(' ')}: no exit within ${timeoutMs} ms`));
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal === null ? 1 : 128), output: output.trim() });
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

// ---------------------------------------------------------------------------------------------
// Processes and pid files.

/** Whether a pid names a live process. A zombie answers signal 0 but is dead (and in a container
 * nobody may ever reap it: PID 1 is not always an init), so /proc's state decides when present. */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  return !isZombie(pid);
}

/** Linux: an exited process not yet reaped by its parent (state Z, or X while being reaped). */
function isZombie(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state === 'Z' || state === 'X';
  } catch {
    return false; // gone, or no /proc (not Linux): signal 0 is all we have.
  }
}

/** Whether a live pid runs `program`: a crashed server's pid may have been reused by another process,
 * which we must neither signal nor mistake for our server. Without /proc we cannot tell: assume yes. */
function runsProgram(pid: number, program: string): boolean {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(program);
  } catch {
    return !fs.existsSync('/proc/self');
  }
}

function readPid(file: string): number | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  const pid = Number.parseInt(text.split('\n')[0]?.trim() ?? '', 10);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/** The pid in a pid file when it names a live `program` process. */
function livePid(file: string, program: string): number | undefined {
  const pid = readPid(file);
  return pid !== undefined && isAlive(pid) && runsProgram(pid, program) ? pid : undefined;
}

/** A pid file left by a crash (SIGKILL, power loss) names no live server: remove it so that neither
 * the next start nor `down` trusts it. */
function removeStalePidFile(file: string, program: string, log: Log): void {
  if (!fs.existsSync(file) || livePid(file, program) !== undefined) return;
  log(`removing stale pid file ${path.relative(rootDir, file)}`);
  fs.rmSync(file, { force: true });
}

async function waitForExit(pid: number, msMax: number): Promise<boolean> {
  const deadline = Date.now() + msMax;
  while (isAlive(pid)) {
    if (Date.now() >= deadline) return false;
    await sleep(pollIntervalMs);
  }
  return true;
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

/** SIGTERM (both nats-server and redis-server shut down cleanly on it; redis fsyncs its AOF), a
 * bounded wait, then SIGKILL. */
async function terminate(label: string, pid: number, log: Log): Promise<void> {
  log(`${label}: stopping (pid ${pid})`);
  signal(pid, 'SIGTERM');
  if (await waitForExit(pid, stopWaitMsMax)) return;
  log(`${label}: still running ${stopWaitMsMax} ms after SIGTERM; sending SIGKILL`);
  signal(pid, 'SIGKILL');
  if (!(await waitForExit(pid, killWaitMsMax))) throw new Error(`${label}: pid ${pid} survived SIGKILL`);
}

// ---------------------------------------------------------------------------------------------
// Probes: is our port answered, and by the right kind of server?

/** up: the server answers; starting: it answers "not ready yet"; down: nothing listens;
 * foreign: something listens but does not speak the protocol (another program holds the port).
 * silent: something accepted the connection and said nothing within probeWaitMsMax: another
 * program, or a redis-server of ours loading a large AOF (it answers nothing for seconds while it
 * reads the base RDB, and -LOADING only between chunks). */
type Probe = 'up' | 'starting' | 'down' | 'foreign' | 'silent';

function probePort(port: number, hello: Buffer | undefined, judge: (reply: Buffer) => Probe | undefined): Promise<Probe> {
  return new Promise((resolve) => {
    const socket = net.createConnection({ host, port });
    let connected = false;
    let reply = Buffer.alloc(0);
    const finish = (result: Probe): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => finish(connected ? 'silent' : 'down'), probeWaitMsMax);
    socket.on('connect', () => {
      connected = true;
      if (hello !== undefined) socket.write(hello);
    });
    socket.on('data', (chunk: Buffer) => {
      reply = Buffer.concat([reply, chunk]);
      const verdict = judge(reply);
      if (verdict !== undefined) finish(verdict);
    });
    socket.on('error', () => finish(connected ? 'foreign' : 'down'));
    socket.on('close', () => finish(connected ? 'foreign' : 'down'));
  });
}

/** The first CRLF-terminated line of a reply, once complete. */
function firstLine(reply: Buffer): string | undefined {
  const text = reply.toString('latin1');
  const end = text.indexOf('\r\n');
  return end < 0 ? undefined : text.slice(0, end);
}

/** nats-server greets every client with an INFO line. */
function probeNats(): Promise<Probe> {
  return probePort(natsPort, undefined, (reply) => {
    const line = firstLine(reply);
    if (line === undefined) return undefined;
    return line.startsWith('INFO ') ? 'up' : 'foreign';
  });
}

/** Redis answers PING with +PONG, or -LOADING while it replays its AOF after a restart. (Exported for its test.) */
export function probeRedis(port = redisPort): Promise<Probe> {
  return probePort(port, Buffer.from('PING\r\n'), (reply) => {
    const line = firstLine(reply);
    if (line === undefined) return undefined;
    if (line === '+PONG') return 'up';
    return line.startsWith('-LOADING') ? 'starting' : 'foreign';
  });
}

/** PostgreSQL answers an SSLRequest with one byte, 'S' or 'N' (no pg_isready needed, nor a login). */
function probePostgres(): Promise<Probe> {
  const sslRequest = Buffer.alloc(8);
  sslRequest.writeInt32BE(8, 0);
  sslRequest.writeInt32BE(80877103, 4);
  return probePort(pgPort, sslRequest, (reply) => (reply[0] === 0x53 || reply[0] === 0x4e ? 'up' : 'foreign'));
}

const probes: Record<ServiceName, () => Promise<Probe>> = { nats: probeNats, redis: () => probeRedis(), postgres: probePostgres };

function foreignError(service: ServiceName): Error {
  return new Error(
    `${service}: port ${host}:${ports[service]} is taken by something that is not ${aptPackage[service]}; ` +
      `stop it, or point ${envOverride[service]} at your own server`,
  );
}

/** Poll until the port answers; `failure` reports early death (e.g. the spawned process exited). */
async function waitUntilUp(service: ServiceName, failure: () => string | undefined): Promise<void> {
  const port = ports[service];
  const waitMsMax = service === 'redis' ? redisStartWaitMsMax : startWaitMsMax;
  const deadline = Date.now() + waitMsMax;
  for (;;) {
    const state = await probes[service]();
    if (state === 'up') return;
    if (state === 'foreign') throw foreignError(service);
    // Down, starting or silent (redis loading its AOF answers nothing for seconds): keep polling;
    // `failure` reports a server that died, the deadline one that never answers.
    const why = failure();
    if (why !== undefined) throw new Error(`${service}: ${why}`);
    if (Date.now() >= deadline) throw new Error(`${service}: not answering on ${host}:${port} after ${waitMsMax} ms`);
    await sleep(pollIntervalMs);
  }
}

// ---------------------------------------------------------------------------------------------
// Binaries and installation.

/** Where the servers live on Debian/Ubuntu even when sbin is not on a non-root user's PATH. */
const extraBinDirs = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

function findOnPath(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter).filter((d) => d !== ''), ...extraBinDirs];
  for (const dir of dirs) {
    const candidate = path.join(dir, name);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** PostgreSQL's bin directory: Debian keeps each major in /usr/lib/postgresql/<major>/bin (pick the
 * highest installed); elsewhere pg_ctl is on the PATH. */
function findPgBinDir(): string | undefined {
  const debianRoot = '/usr/lib/postgresql';
  let majors: number[] = [];
  try {
    majors = fs
      .readdirSync(debianRoot)
      .filter((entry) => /^\d+(\.\d+)?$/.test(entry) && fs.existsSync(path.join(debianRoot, entry, 'bin', 'pg_ctl')))
      .map(Number)
      .sort((a, b) => b - a);
  } catch {
    // not Debian-style
  }
  const newest = majors[0];
  if (newest !== undefined) return path.join(debianRoot, String(newest), 'bin');
  const pgCtl = findOnPath('pg_ctl');
  return pgCtl === undefined ? undefined : path.dirname(pgCtl);
}

/** The server binary (nats, redis) or PostgreSQL's bin directory. */
function locate(service: ServiceName): string | undefined {
  if (service === 'nats') return findOnPath('nats-server');
  if (service === 'redis') return findOnPath('redis-server');
  return findPgBinDir();
}

function located(service: ServiceName): string {
  const found = locate(service);
  if (found === undefined) throw new Error(`${service}: ${aptPackage[service]} is not installed`);
  return found;
}

let aptUpdated = false;

/** Install the missing packages with apt-get when we can (Debian/Ubuntu, root); otherwise say exactly
 * what to run. Debian's postgresql package may create and start its own cluster on 5432: harmless,
 * we run our own cluster on 25432. */
async function ensureInstalled(services: ServiceName[], log: Log): Promise<void> {
  const missing = services.filter((service) => locate(service) === undefined).map((service) => aptPackage[service]);
  if (missing.length === 0) return;
  const installArgs = ['install', '-y', ...missing];
  if (!fs.existsSync('/usr/bin/apt-get')) {
    throw new Error(`missing ${missing.join(', ')}: install them with your package manager, then run again`);
  }
  if (!isRoot()) {
    throw new Error(
      `missing ${missing.join(', ')}; install them with:\n` +
        `  sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get ${installArgs.join(' ')}`,
    );
  }
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  if (!aptUpdated) {
    log('apt-get update');
    const update = await run('apt-get', ['update'], { env, inheritOutput: true, timeoutMs: installWaitMsMax });
    if (update.code !== 0) throw new Error(`apt-get update failed (exit ${update.code})`);
    aptUpdated = true;
  }
  log(`apt-get ${installArgs.join(' ')}`);
  const install = await run('apt-get', installArgs, { env, inheritOutput: true, timeoutMs: installWaitMsMax });
  if (install.code !== 0) throw new Error(`apt-get ${installArgs.join(' ')} failed (exit ${install.code})`);
  for (const service of services) located(service); // fail now if a package did not bring its binary
}

// ---------------------------------------------------------------------------------------------
// NATS.

/** The Go scheduler's processors for nats-server on this stack (see natsUp). */
const NATS_GOMAXPROCS_DEFAULT = '1';

/** Start nats-server unless one answers already. Returns whether this call started it. */
async function natsUp(state: Probe, log: Log): Promise<boolean> {
  if (state === 'up') {
    log(`nats: reusing the server on ${host}:${natsPort}`);
    return false;
  }
  if (state === 'foreign') throw foreignError('nats');
  removeStalePidFile(natsPidFile, 'nats-server', log);
  if (livePid(natsPidFile, 'nats-server') !== undefined) {
    // Ours, started a moment ago by someone else and not listening yet: wait instead of starting a second.
    log('nats: a server of ours is starting; waiting for it');
    await waitUntilUp('nats', () => undefined);
    return false;
  }
  fs.mkdirSync(path.join(natsDir, 'js'), { recursive: true });
  const args = ['-a', host, '-p', String(natsPort), '-m', String(natsMonitorPort), '-js', '-sd', path.join(natsDir, 'js')];
  args.push('-P', natsPidFile, '-l', natsLogFile);
  log(`nats: starting on ${host}:${natsPort} (monitoring ${natsMonitorPort}), data ${path.relative(rootDir, natsDir)}`);
  // One P for the Go scheduler: with two, nats-server's goroutine hand-offs (read loop → stream →
  // consumer → write) wake threads across both cores at ~4 context switches a payment, which on
  // these VMs cost more than the work (docs/BENCHMARKS.md, session 12). Set GOMAXPROCS to override.
  const env = { ...process.env, GOMAXPROCS: process.env.GOMAXPROCS ?? NATS_GOMAXPROCS_DEFAULT };
  const child = spawn(located('nats'), args, { cwd: rootDir, detached: true, stdio: 'ignore', env });
  let exit: string | undefined;
  child.on('error', (err) => (exit = `could not run nats-server: ${err.message}`));
  child.on('exit', (code, sig) => (exit = `nats-server exited (${sig ?? `code ${code}`}); ${natsLogFile}:\n${tail(natsLogFile)}`));
  child.unref();
  await waitUntilUp('nats', () => exit);
  return true;
}

async function natsDown(log: Log): Promise<void> {
  const pid = livePid(natsPidFile, 'nats-server');
  if (pid === undefined) log('nats: not running');
  else await terminate('nats', pid, log);
  fs.rmSync(natsPidFile, { force: true });
}

// ---------------------------------------------------------------------------------------------
// Redis.

async function redisUp(state: Probe, log: Log): Promise<boolean> {
  if (state === 'up' || state === 'starting') {
    log(`redis: reusing the server on ${host}:${redisPort}`);
    if (state === 'starting') await waitUntilUp('redis', () => undefined);
    return false;
  }
  if (state === 'foreign') throw foreignError('redis');
  removeStalePidFile(redisPidFile, 'redis-server', log);
  if (livePid(redisPidFile, 'redis-server') !== undefined) {
    log('redis: a server of ours is starting; waiting for it');
    await waitUntilUp('redis', () => undefined);
    return false;
  }
  fs.mkdirSync(redisDir, { recursive: true });
  const args = ['--bind', host, '--port', String(redisPort), '--protected-mode', 'yes'];
  // Durability: every write goes to the AOF, fsynced each second; no RDB snapshots.
  args.push('--appendonly', 'yes', '--appendfsync', 'everysec', '--save', '');
  // The AOF is rewritten once it has grown by 1 GB (Redis's default: 64 MB). A rewrite forks Redis
  // and writes its whole dataset: at peak load on two cores, uniform runs settled 15% fewer
  // payments with one in progress (a rewrite every ~15 s at ~1,400 payments/s). The price: up to
  // ~1 GB more to replay after a crash, ~17 s on this machine (docs/OPERATIONS.md).
  args.push('--auto-aof-rewrite-min-size', '1gb');
  args.push('--dir', redisDir, '--pidfile', redisPidFile, '--logfile', redisLogFile, '--daemonize', 'yes');
  log(`redis: starting on ${host}:${redisPort}, data ${path.relative(rootDir, redisDir)}`);
  // redis daemonizes itself: the process we spawn exits as soon as the daemon is forked (which
  // points its stdio at /dev/null), so capturing this one's stderr is safe and shows config errors.
  const launch = await run(located('redis'), args, { detached: true, timeoutMs: startWaitMsMax });
  if (launch.code !== 0) throw new Error(`redis: redis-server failed (exit ${launch.code}): ${launch.output}\n${tail(redisLogFile)}`);
  await waitUntilUp('redis', () =>
    fs.existsSync(redisPidFile) && livePid(redisPidFile, 'redis-server') === undefined
      ? `redis-server died; ${redisLogFile}:\n${tail(redisLogFile)}`
      : undefined,
  );
  return true;
}

async function redisDown(log: Log): Promise<void> {
  const pid = livePid(redisPidFile, 'redis-server');
  if (pid === undefined) log('redis: not running');
  else await terminate('redis', pid, log);
  fs.rmSync(redisPidFile, { force: true });
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL.

type PgLayout = {
  /** The real cluster directory: what pg_ctl -D gets. The postgres user must be able to reach it. */
  clusterDir: string;
  logFile: string;
  socketDir: string;
};

/** Where the cluster really is: .data/pg/data, or the target of that symlink. */
function pgClusterDir(): string {
  try {
    if (fs.lstatSync(pgDataLink).isSymbolicLink()) return path.resolve(pgHome, fs.readlinkSync(pgDataLink));
  } catch {
    // does not exist yet
  }
  return pgDataLink;
}

/** The unix socket goes next to the cluster unless the path is too long for sun_path. */
function pgSocketDir(dir: string): string {
  return path.join(dir, `.s.PGSQL.${pgPort}`).length <= pgSocketPathLengthMax ? dir : '/tmp';
}

function pgLayoutIn(dir: string, clusterDir: string): PgLayout {
  return { clusterDir, logFile: path.join(dir, 'pg.log'), socketDir: pgSocketDir(dir) };
}

function postgresOwner(): { uid: number; gid: number } {
  const line = fs
    .readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((entry) => entry.startsWith('postgres:'));
  const fields = line?.split(':') ?? [];
  const uid = Number(fields[2]);
  const gid = Number(fields[3]);
  if (line === undefined || !Number.isInteger(uid) || !Number.isInteger(gid)) {
    throw new Error('postgres: no "postgres" OS user (it comes with the postgresql package); as root we need it to run the server');
  }
  return { uid, gid };
}

function chownTo(file: string, owner: { uid: number; gid: number }): void {
  const stat = fs.statSync(file);
  if (stat.uid !== owner.uid || stat.gid !== owner.gid) fs.chownSync(file, owner.uid, owner.gid);
}

/** As root, PostgreSQL must run as the postgres user, who needs to reach the cluster: every parent
 * directory traversable. A checkout under /root (mode 700) fails that, so the cluster then lives in
 * /var/tmp (kept across reboots, unlike /tmp) with .data/pg/data a symlink to it. */
async function preparePgLayout(log: Log): Promise<PgLayout> {
  fs.mkdirSync(pgHome, { recursive: true });
  if (!isRoot()) return pgLayoutIn(pgHome, pgDataLink);

  const owner = postgresOwner();
  const clusterDir = pgClusterDir();
  if (clusterDir !== pgDataLink) {
    // Moved out by an earlier run. /var/tmp may have been cleaned since: recreate its parent.
    const outside = path.dirname(clusterDir);
    fs.mkdirSync(outside, { recursive: true, mode: 0o700 });
    chownTo(outside, owner);
    return pgLayoutIn(outside, clusterDir);
  }

  chownTo(pgHome, owner);
  // Ask the kernel as the postgres user rather than reasoning about modes (ACLs, groups, ...).
  const reachable = (await run('test', ['-w', pgHome, '-a', '-x', pgHome], { asPostgres: true })).code === 0;
  if (reachable) {
    const layout = pgLayoutIn(pgHome, pgDataLink);
    if (fs.existsSync(layout.logFile)) chownTo(layout.logFile, owner);
    return layout;
  }

  const hash = crypto.createHash('sha256').update(rootDir).digest('hex').slice(0, 10);
  const outside = `/var/tmp/peakpay-pg-${hash}`;
  if (fs.existsSync(pgDataLink)) {
    throw new Error(
      `postgres: the postgres user cannot reach ${pgDataLink} (a parent directory is not traversable); ` +
        `move it to ${outside}/data, chown it to postgres and leave a symlink in its place`,
    );
  }
  fs.mkdirSync(outside, { recursive: true, mode: 0o700 });
  chownTo(outside, owner);
  fs.symlinkSync(path.join(outside, 'data'), pgDataLink);
  log(
    `postgres: the postgres user cannot reach ${pgHome} (a parent directory is not traversable), ` +
      `so the cluster lives in ${outside}/data (log ${outside}/pg.log); ${path.relative(rootDir, pgDataLink)} links to it`,
  );
  return pgLayoutIn(outside, path.join(outside, 'data'));
}

/** initdb once; our settings go in their own file (rewritten at every start), postgresql.conf only
 * includes it. Settings in a file rather than pg_ctl -o, because pg_ctl passes -o through a shell. */
async function initCluster(pgBin: string, layout: PgLayout, log: Log): Promise<void> {
  if (fs.existsSync(path.join(layout.clusterDir, 'PG_VERSION'))) return;
  log(`postgres: initdb ${layout.clusterDir}`);
  // --locale=C: byte-order collation, the same on every machine, and no dependency on generated locales.
  const args = ['-D', layout.clusterDir, '--auth=trust', '--username=postgres', '--encoding=UTF8', '--locale=C'];
  const init = await run(path.join(pgBin, 'initdb'), args, { asPostgres: true });
  if (init.code !== 0) throw new Error(`postgres: initdb failed (exit ${init.code}):\n${init.output}`);
  fs.appendFileSync(
    path.join(layout.clusterDir, 'postgresql.conf'),
    `\n# peakpay local stack: our settings, written by scripts/stack.ts\ninclude_if_exists = '${pgConfName}'\n`,
  );
}

function writePgConf(layout: PgLayout): void {
  const quoted = (value: string): string => `'${value.replaceAll("'", "''")}'`;
  const file = path.join(layout.clusterDir, pgConfName);
  const text = [
    '# Written by scripts/stack.ts at every start: edit the script, not this file.',
    `port = ${pgPort}`,
    `listen_addresses = ${quoted(host)}`,
    `unix_socket_directories = ${quoted(layout.socketDir)}`,
    '',
  ].join('\n');
  fs.writeFileSync(file, text, { mode: 0o600 });
  if (isRoot()) chownTo(file, postgresOwner());
}

async function postgresUp(state: Probe, log: Log): Promise<boolean> {
  const pgBin = located('postgres');
  let started = false;
  if (state === 'up') {
    log(`postgres: reusing the server on ${host}:${pgPort}`);
  } else if (state === 'foreign') {
    throw foreignError('postgres');
  } else {
    const layout = await preparePgLayout(log);
    if (livePid(path.join(layout.clusterDir, 'postmaster.pid'), 'postgres') !== undefined) {
      log('postgres: our server is starting (or recovering); waiting for it');
      await waitUntilUp('postgres', () => undefined);
    } else {
      await initCluster(pgBin, layout, log);
      writePgConf(layout);
      // A stale postmaster.pid (crash, SIGKILL) is handled by PostgreSQL itself, which also checks
      // that no orphaned backend still uses the old shared memory; we must not delete it ourselves.
      await waitForPostmasterReaped(layout, log);
      log(`postgres: starting on ${host}:${pgPort}, cluster ${layout.clusterDir}`);
      const startSeconds = String(Math.ceil(startWaitMsMax / 1000));
      const args = ['-D', layout.clusterDir, '-l', layout.logFile, '-w', '-t', startSeconds, 'start'];
      const start = await run(path.join(pgBin, 'pg_ctl'), args, { asPostgres: true, detached: true, timeoutMs: startWaitMsMax + 10_000 });
      if (start.code !== 0) {
        throw new Error(`postgres: pg_ctl start failed (exit ${start.code}):\n${start.output}\n${layout.logFile}:\n${tail(layout.logFile)}`);
      }
      started = true;
    }
  }
  try {
    await ensureRoleAndDatabases(pgBin, log);
  } catch (err) {
    if (started) await postgresDown(log).catch((stopErr: unknown) => log(`postgres: stop failed: ${errorText(stopErr)}`));
    throw err;
  }
  return started;
}

/** PostgreSQL tells a stale postmaster.pid by signal 0 to its pid, which a zombie still answers:
 * right after a kill -9 it refuses to start ("lock file already exists") until the dead postmaster
 * is reaped. Its parent is PID 1, which reaps it soon (about 2 s here, in a container); wait for it. */
async function waitForPostmasterReaped(layout: PgLayout, log: Log): Promise<void> {
  const pid = readPid(path.join(layout.clusterDir, 'postmaster.pid'));
  if (pid === undefined || !isZombie(pid)) return;
  log(`postgres: the crashed postmaster (pid ${pid}) is not reaped yet; waiting for it`);
  const deadline = Date.now() + startWaitMsMax;
  while (isZombie(pid)) {
    if (Date.now() >= deadline) {
      throw new Error(
        `postgres: the dead postmaster (pid ${pid}) is still a zombie after ${startWaitMsMax} ms, and PostgreSQL ` +
          'will not start while its pid exists; PID 1 does not reap orphans (run the container with an init, e.g. docker --init)',
      );
    }
    await sleep(pollIntervalMs);
  }
}

const ensureRoleSql = `
SELECT 'CREATE ROLE peakpay LOGIN SUPERUSER' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'peakpay') \\gexec
SELECT 'CREATE DATABASE peakpay OWNER peakpay' WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'peakpay') \\gexec
SELECT 'CREATE DATABASE peakpay_test OWNER peakpay' WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'peakpay_test') \\gexec
`;

/** Idempotent. A reused server may still be starting or replaying WAL after a crash: retry then. */
async function ensureRoleAndDatabases(pgBin: string, log: Log): Promise<void> {
  const args = ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', host, '-p', String(pgPort), '-U', 'postgres', '-d', 'postgres', '-f', '-'];
  const env = { ...process.env, PGCONNECT_TIMEOUT: '5' };
  const deadline = Date.now() + startWaitMsMax;
  for (;;) {
    const psql = await run(path.join(pgBin, 'psql'), args, { input: ensureRoleSql, env });
    if (psql.code === 0) return;
    const notReady = /starting up|not yet accepting connections|in recovery/i.test(psql.output);
    if (!notReady || Date.now() >= deadline) {
      throw new Error(`postgres: could not create role/databases peakpay, peakpay_test (psql exit ${psql.code}):\n${psql.output}`);
    }
    log('postgres: server not ready yet; retrying');
    await sleep(pollIntervalMs * 5);
  }
}

async function postgresDown(log: Log): Promise<void> {
  const clusterDir = pgClusterDir();
  const pid = livePid(path.join(clusterDir, 'postmaster.pid'), 'postgres');
  if (pid === undefined) {
    log('postgres: not running');
    return;
  }
  log(`postgres: stopping (pid ${pid})`);
  const pgBin = findPgBinDir();
  if (pgBin !== undefined) {
    const stopSeconds = String(Math.ceil(stopWaitMsMax / 1000));
    const args = ['-D', clusterDir, '-m', 'fast', '-w', '-t', stopSeconds, 'stop'];
    const stop = await run(path.join(pgBin, 'pg_ctl'), args, { asPostgres: true, timeoutMs: stopWaitMsMax + 10_000 });
    if (stop.code === 0 && (await waitForExit(pid, killWaitMsMax))) return;
    log(`postgres: pg_ctl stop failed (exit ${stop.code}): ${stop.output}`);
  } else {
    signal(pid, 'SIGINT'); // SIGINT is PostgreSQL's "fast" shutdown
    if (await waitForExit(pid, stopWaitMsMax)) return;
  }
  log('postgres: sending SIGKILL to the postmaster');
  signal(pid, 'SIGKILL');
  if (!(await waitForExit(pid, killWaitMsMax))) throw new Error(`postgres: pid ${pid} survived SIGKILL`);
}

// ---------------------------------------------------------------------------------------------
// The stack.

const startService: Record<ServiceName, (state: Probe, log: Log) => Promise<boolean>> = {
  nats: natsUp,
  redis: redisUp,
  postgres: postgresUp,
};
const stopService: Record<ServiceName, (log: Log) => Promise<void>> = { nats: natsDown, redis: redisDown, postgres: postgresDown };

/** The services we manage: all but those the user named by URL. */
function managedServices(): ServiceName[] {
  return allServices.filter((service) => !process.env[envOverride[service]]);
}

function stackInfo(started: ServiceName[]): StackInfo {
  const databaseUrl = process.env.DATABASE_URL || urls.database;
  return {
    natsUrl: process.env.NATS_URL || urls.nats,
    redisUrl: process.env.REDIS_URL || urls.redis,
    databaseUrl,
    testDatabaseUrl: process.env.DATABASE_URL ? databaseUrl : urls.testDatabase,
    started,
    dataDir,
  };
}

/** Bring up what is not running yet. On failure, stops what this call started, then throws. */
export async function stackUp(opts: { log?: (line: string) => void } = {}): Promise<StackInfo> {
  const log = opts.log ?? defaultLog;
  const managed = managedServices();
  for (const service of allServices) {
    if (!managed.includes(service)) log(`${service}: using ${envOverride[service]} (yours: not started or stopped here)`);
  }
  fs.mkdirSync(dataDir, { recursive: true });

  const states = new Map<ServiceName, Probe>();
  for (const service of managed) states.set(service, await probes[service]());
  // A silent redis whose pid file names a live redis-server is ours, loading its AOF.
  if (states.get('redis') === 'silent' && livePid(redisPidFile, 'redis-server') !== undefined) states.set('redis', 'starting');
  // Fail before starting anything when another program holds one of our ports.
  const taken = managed.find((service) => states.get(service) === 'foreign' || states.get(service) === 'silent');
  if (taken !== undefined) throw foreignError(taken);
  // Binaries are needed to start a server, and psql to create the role and databases on any server.
  await ensureInstalled(
    managed.filter((service) => service === 'postgres' || states.get(service) === 'down'),
    log,
  );

  const started: ServiceName[] = [];
  try {
    for (const service of managed) {
      if (await startService[service](states.get(service) ?? 'down', log)) started.push(service);
    }
  } catch (err) {
    if (started.length > 0) {
      log(`stopping what this call started (${started.join(', ')}) after the failure`);
      await stackDown(started, { log }).catch((stopErr: unknown) => log(`stop failed: ${errorText(stopErr)}`));
    }
    throw err;
  }
  return stackInfo(started);
}

/** Stop exactly the given services (those stackUp reported as started), last started first. */
export async function stackDown(started: ServiceName[], opts: { log?: (line: string) => void } = {}): Promise<void> {
  const log = opts.log ?? defaultLog;
  const failures: string[] = [];
  for (const service of [...allServices].reverse()) {
    if (!started.includes(service)) continue;
    try {
      await stopService[service](log);
    } catch (err) {
      failures.push(errorText(err));
    }
  }
  if (failures.length > 0) throw new Error(failures.join('\n'));
}

/** The services whose server we started earlier: a live pid in one of our pid files in .data. */
function servicesWithOurPidFile(): ServiceName[] {
  const owned: ServiceName[] = [];
  if (livePid(natsPidFile, 'nats-server') !== undefined) owned.push('nats');
  if (livePid(redisPidFile, 'redis-server') !== undefined) owned.push('redis');
  if (livePid(path.join(pgClusterDir(), 'postmaster.pid'), 'postgres') !== undefined) owned.push('postgres');
  return owned;
}

// ---------------------------------------------------------------------------------------------
// CLI.

async function printStatus(): Promise<boolean> {
  const owned = servicesWithOurPidFile();
  const url: Record<ServiceName, string> = { nats: urls.nats, redis: urls.redis, postgres: urls.database };
  let allUp = true;
  for (const service of allServices) {
    const override = process.env[envOverride[service]];
    if (override) {
      console.log(`${service.padEnd(9)}yours    ${override} (${envOverride[service]})`);
      continue;
    }
    const state = await probes[service]();
    allUp &&= state === 'up';
    const whose = state === 'down' ? '' : owned.includes(service) ? ' (ours, .data)' : ' (not started from .data)';
    console.log(`${service.padEnd(9)}${state.padEnd(9)}${url[service]}${whose}`);
  }
  return allUp;
}

async function main(command: string | undefined): Promise<number> {
  switch (command) {
    case 'up': {
      const info = await stackUp();
      console.log(`NATS_URL=${info.natsUrl}`);
      console.log(`REDIS_URL=${info.redisUrl}`);
      console.log(`DATABASE_URL=${info.databaseUrl}`);
      console.log(`TEST_DATABASE_URL=${info.testDatabaseUrl}`);
      defaultLog(info.started.length > 0 ? `started: ${info.started.join(', ')}` : 'started nothing: all were up');
      return 0;
    }
    case 'down': {
      const owned = servicesWithOurPidFile();
      if (owned.length === 0) defaultLog('nothing of ours is running');
      await stackDown(owned);
      return 0;
    }
    case 'status':
      return (await printStatus()) ? 0 : 3;
    default:
      console.error('usage: tsx scripts/stack.ts up|down|status');
      return 2;
  }
}

function isRunDirectly(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return fs.realpathSync(script) === fs.realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isRunDirectly()) {
  main(process.argv[2]).then(
    (code) => (process.exitCode = code),
    (err: unknown) => {
      console.error(`stack: ${errorText(err)}`);
      process.exitCode = 1;
    },
  );
}
