// node queue-and-lock.mjs JOBS RESULTS LOCK: takes LOCK, says "locked" on RESULTS, answers
// every {n} it gets from JOBS with {n, square} until it gets "release", then releases
// LOCK and says "released". A Python script on the other side checks it all.
import { Session } from "./bridge.mjs";

const [jobsName, resultsName, lockName] = process.argv.slice(2);
if (!lockName) {
  console.error("usage: node queue-and-lock.mjs JOBS RESULTS LOCK");
  process.exit(2);
}

const session = await Session.open();
try {
  const jobs = await session.queue(jobsName);
  const results = await session.queue(resultsName);
  const lock = await session.lock(lockName);
  if (!(await lock.acquire(30))) throw new Error(`could not take ${lockName}`);
  await results.put("locked");
  for (;;) {
    const job = await jobs.get(30);
    if (job === "release") break;
    await results.put({ n: job.n, square: job.n * job.n, from: "node" });
  }
  await lock.release();
  await results.put("released");
} finally {
  await session.close();
}
