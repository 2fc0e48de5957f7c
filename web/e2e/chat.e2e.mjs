// End-to-end test of the web client against real servers, in headless Chromium.
//
//   CHAT_URL=http://127.0.0.1:8080 node web/e2e/chat.e2e.mjs
//
// Two browser contexts are two users: alice on a phone-sized viewport, bob on a desktop one. alice
// creates a room through the UI and bob opens it from the room list. A message from one must appear on
// the other within a second, and so must a reaction's count; reloading shows the history. Then, in a
// room of her own, alice moderates: she deletes bob's message and bans him, and bob's next post is
// refused with the reason. Any error in either browser console fails the test (bar the refusals the
// test provokes). It leaves screenshots of the room view in docs/.
//
// Environment: CHAT_URL (required), CHROMIUM (default /usr/bin/chromium), SCREENSHOT_DIR (default
// docs/ in the repository), E2E_ARTIFACTS (where failure screenshots go; default a temp directory).
// With PUBLISH_PID_FILE, PUBLISH_SERVER_CMD, PUBLISH_URL (and PUBLISH_LOG) set, as scripts/test-web does,
// it also restarts the publish-server mid-test to check that the pages reconnect and catch up.

import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const CHAT_URL = process.env.CHAT_URL;
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const SCREENSHOT_DIR = resolve(process.env.SCREENSHOT_DIR ?? join(here, '..', '..', 'docs'));
const ARTIFACTS = process.env.E2E_ARTIFACTS ?? mkdtempSync(join(tmpdir(), 'hotchat-e2e-'));
/** The product's promise: live updates reach the other user within a second. */
const LIVE_MS = 1000;

if (!CHAT_URL) {
  console.error('chat.e2e: set CHAT_URL to the chat-server serving the built app, e.g. http://127.0.0.1:8080');
  process.exit(2);
}

const consoleErrors = [];
/** Whether the test has stopped the publish-server on purpose (see the reconnect step). */
let restarting = false;
/** A refusal the test provokes on purpose (bob's post after his ban): the browser logs it as an error. */
let expectedRefusal = null;
const steps = [];

function step(name) {
  steps.push(name);
  console.log(`  - ${name}`);
}

function watch(page, who) {
  page.on('console', (msg) => {
    // While the test holds the publish-server down, the browser itself logs each failed reconnection
    // attempt of the EventSource (net::ERR_CONNECTION_REFUSED): the test's doing, not the app's.
    const provoked =
      (restarting && msg.text().includes('net::ERR_CONNECTION_REFUSED')) || (expectedRefusal && expectedRefusal.test(msg.text()));
    if (msg.type() === 'error' && !provoked) {
      const where = msg.location()?.url ? ` (${msg.location().url})` : '';
      consoleErrors.push(`${who}: console error: ${msg.text()}${where}`);
    }
  });
  page.on('pageerror', (error) => consoleErrors.push(`${who}: uncaught: ${error.message}`));
}

async function signIn(page, name) {
  await page.goto(CHAT_URL);
  await page.getByRole('textbox', { name: 'Name' }).fill(name);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('textbox', { name: 'Room name' }).waitFor();
}

const messageItem = (page, text) => page.getByRole('list', { name: 'Messages' }).getByRole('listitem').filter({ hasText: text });

const reconnecting = (page) => page.getByRole('status').filter({ hasText: /^Reconnecting…$/ });

/** Stops the publish-server whose pid is in PUBLISH_PID_FILE and waits until it has exited. */
async function stopPublishServer() {
  const pid = Number(readFileSync(process.env.PUBLISH_PID_FILE, 'utf8'));
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    if (Date.now() > deadline) throw new Error(`publish-server ${pid} did not stop`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Starts PUBLISH_SERVER_CMD again (same environment, same port), records its pid, waits for /readyz. */
async function startPublishServer() {
  const log = openSync(process.env.PUBLISH_LOG ?? '/dev/null', 'a');
  const child = spawn(process.env.PUBLISH_SERVER_CMD, [], { stdio: ['ignore', log, log] });
  writeFileSync(process.env.PUBLISH_PID_FILE, String(child.pid));
  // The caller (scripts/test-web) stops it through the pid file; this process must not wait for it.
  child.unref();
  closeSync(log);
  const ready = `${process.env.PUBLISH_URL}/readyz`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`publish-server exited with ${child.exitCode} on restart`);
    try {
      if ((await fetch(ready)).ok) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error('publish-server did not become ready after its restart');
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The signed-in user's session as the app keeps it (its token and user). */
const sessionOf = (page) => page.evaluate(() => JSON.parse(localStorage.getItem('hotchat.session')));

/** Polls `check` (an async predicate) every 100 ms until it holds; fails after `timeoutMs`. */
async function until(what, check, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** GETs a chat API path as `token`'s user; the JSON body. */
async function getJson(path, token) {
  const response = await fetch(`${CHAT_URL}${path}`, { headers: { authorization: `Bearer ${token}` } });
  if (!response.ok) throw new Error(`GET ${path}: ${response.status} ${await response.text()}`);
  return response.json();
}

async function waitLive(page) {
  await page.getByRole('status').filter({ hasText: /^Live$/ }).waitFor();
}

/** Sends `text` from `from` with Enter and returns how long `to` took to show it. */
async function sendAndSee(from, to, text) {
  const box = from.getByRole('textbox', { name: 'Message' });
  await box.fill(text);
  const started = Date.now();
  await box.press('Enter');
  await messageItem(to, text).waitFor({ timeout: LIVE_MS });
  const took = Date.now() - started;
  // The sender sees it once: the optimistic copy was reconciled with the server's.
  await messageItem(from, text).filter({ hasNotText: 'Sending' }).waitFor();
  await from.waitForTimeout(150);
  const copies = await messageItem(from, text).count();
  if (copies !== 1) throw new Error(`the sender shows ${copies} copies of "${text}"`);
  return took;
}

/** `who` clicks a reaction on the message `text`; returns how long `other` took to show `count`. */
async function reactAndSee(who, other, text, emoji, count) {
  const started = Date.now();
  await messageItem(who, text).getByRole('button', { name: `React ${emoji}` }).click();
  await messageItem(other, text).getByRole('button', { name: `React ${emoji} ${count}`, exact: true }).waitFor({ timeout: LIVE_MS });
  const took = Date.now() - started;
  await messageItem(who, text).getByRole('button', { name: `React ${emoji} ${count}`, exact: true }).waitFor();
  return took;
}

/**
 * Fetches `url` from `concurrency` loops until `until` settles (bounded: at most `max` requests and
 * `deadlineMs`), like many clients opening a popular room at once. Returns the answers by kind.
 */
async function hammer(url, until, { concurrency = 12, max = 4000, deadlineMs = 15_000 } = {}) {
  const stats = { sent: 0, ok: 0, limited: 0, other: 0 };
  const deadline = Date.now() + deadlineMs;
  let done = false;
  until.then(
    () => (done = true),
    () => (done = true),
  );
  const worker = async () => {
    while (!done && stats.sent < max && Date.now() < deadline) {
      stats.sent += 1;
      const response = await fetch(url);
      await response.arrayBuffer();
      if (response.status === 200) stats.ok += 1;
      else if (response.status === 429) stats.limited += 1;
      else stats.other += 1;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return stats;
}

async function main() {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // launch() gives the browser a fresh temporary --user-data-dir of its own (Playwright refuses one in
    // `args`); each context below is a separate profile on top of it.
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  const pages = [];
  try {
    const phone = await browser.newContext({
      viewport: { width: 390, height: 844 },
      deviceScaleFactor: 2,
      isMobile: true,
      hasTouch: true,
    });
    const desktop = await browser.newContext({ viewport: { width: 1180, height: 760 } });
    phone.setDefaultTimeout(10_000);
    desktop.setDefaultTimeout(10_000);
    const alice = await phone.newPage();
    const bob = await desktop.newPage();
    pages.push(['alice', alice], ['bob', bob]);
    watch(alice, 'alice');
    watch(bob, 'bob');

    const stamp = Date.now().toString(36);
    const roomName = `launch-party-${stamp}`;

    step('alice signs in and creates a room through the UI');
    await signIn(alice, 'alice');
    await alice.getByRole('textbox', { name: 'Room name' }).fill(roomName);
    await alice.getByRole('button', { name: 'Create room' }).click();
    await alice.getByRole('heading', { name: roomName }).waitFor();
    await waitLive(alice);
    const roomUrl = alice.url();
    if (!/\/rooms\/[0-9a-f-]{36}$/.test(roomUrl)) throw new Error(`unexpected room URL ${roomUrl}`);

    step('bob signs in and opens the room from the room list');
    await signIn(bob, 'bob');
    await bob.getByRole('link', { name: roomName, exact: true }).click();
    await bob.getByRole('heading', { name: roomName }).waitFor();
    await waitLive(bob);

    step('a message from alice appears on bob’s page within a second');
    const hello = `Hi bob, doors open at 8 (${stamp})`;
    const t1 = await sendAndSee(alice, bob, hello);
    console.log(`    seen by bob after ${t1} ms`);

    step('a message from bob appears on alice’s page within a second');
    const reply = 'Great, saving us a spot near the stage 🎸';
    const t2 = await sendAndSee(bob, alice, reply);
    console.log(`    seen by alice after ${t2} ms`);

    step('bob’s 👍 on alice’s message shows its count on alice’s page within a second');
    const t3 = await reactAndSee(bob, alice, hello, '👍', 1);
    console.log(`    count seen by alice after ${t3} ms`);

    step('alice’s 🎉 on bob’s message shows its count on bob’s page within a second');
    const t4 = await reactAndSee(alice, bob, reply, '🎉', 1);
    console.log(`    count seen by bob after ${t4} ms`);

    step('alice adds 👍 too: both pages count 2');
    await reactAndSee(alice, bob, hello, '👍', 2);

    await sendAndSee(alice, bob, 'See you there!');

    step('reloading shows the history (messages and reaction counts)');
    await alice.reload();
    await alice.getByRole('heading', { name: roomName }).waitFor();
    for (const text of [hello, reply, 'See you there!']) await messageItem(alice, text).waitFor();
    await messageItem(alice, hello).getByRole('button', { name: 'React 👍 2', exact: true }).waitFor();
    await messageItem(alice, reply).getByRole('button', { name: 'React 🎉 1', exact: true }).waitFor();
    await waitLive(alice);
    await bob.reload();
    for (const text of [hello, reply]) await messageItem(bob, text).waitFor();
    await waitLive(bob);

    step('live updates still flow after the reload');
    await sendAndSee(bob, alice, 'Reloaded and still live ✨');

    if (process.env.PUBLISH_PID_FILE && process.env.PUBLISH_SERVER_CMD && process.env.PUBLISH_URL) {
      step('the publish-server restarts: both pages show "Reconnecting…", then resume and catch up');
      restarting = true;
      await stopPublishServer();
      await Promise.all([reconnecting(alice).waitFor(), reconnecting(bob).waitFor()]);
      const missed = 'Sent while the live stream was down';
      await alice.getByRole('textbox', { name: 'Message' }).fill(missed);
      await alice.getByRole('textbox', { name: 'Message' }).press('Enter');
      await messageItem(alice, missed).filter({ hasNotText: 'Sending' }).waitFor();
      await startPublishServer();
      await messageItem(bob, missed).waitFor({ timeout: 15_000 });
      await Promise.all([waitLive(alice), waitLive(bob)]);
      restarting = false;
      const copies = await messageItem(alice, missed).count();
      if (copies !== 1) throw new Error(`after resuming, alice shows ${copies} copies of her message`);
      await sendAndSee(alice, bob, 'Back online 📶');
    } else {
      console.log('    (reconnect step skipped: PUBLISH_PID_FILE, PUBLISH_SERVER_CMD and PUBLISH_URL not set)');
    }

    step('a burst of fetches makes the room hot: both pages say the room is busy, then recover');
    const roomId = roomUrl.split('/').pop();
    const busy = (page) => page.getByText('This room is busy.');
    const bothBusy = Promise.all([busy(alice).waitFor({ timeout: 15_000 }), busy(bob).waitFor({ timeout: 15_000 })]);
    const stats = await hammer(`${CHAT_URL}/api/rooms/${roomId}/messages?limit=5`, bothBusy);
    await bothBusy;
    console.log(`    busy after ${stats.sent} fetches (${stats.ok} answered, ${stats.limited} rate-limited with 429)`);
    if (stats.limited === 0) throw new Error('the hot room never answered 429 to the burst');
    await bob.getByRole('navigation', { name: 'Rooms' }).getByRole('listitem').filter({ hasText: roomName }).getByText('Hot').waitFor();
    await sendAndSee(alice, bob, 'It got busy in here 🔥');
    await bob.screenshot({ path: join(ARTIFACTS, 'busy.png') });
    mkdirSync(SCREENSHOT_DIR, { recursive: true });
    await bob.mouse.move(0, 0);
    await bob.screenshot({ path: join(SCREENSHOT_DIR, 'screenshot-room-busy.png') });
    await busy(alice).waitFor({ state: 'detached', timeout: 20_000 });
    await busy(bob).waitFor({ state: 'detached', timeout: 20_000 });

    step('screenshots of the room view');
    mkdirSync(SCREENSHOT_DIR, { recursive: true });
    await alice.getByRole('textbox', { name: 'Message' }).blur();
    await alice.mouse.move(0, 0);
    // On the desktop, hovering a message shows its reaction picker.
    await messageItem(bob, 'See you there!').locator('.msg__bubble').hover();
    await alice.screenshot({ path: join(SCREENSHOT_DIR, 'screenshot-room.png') });
    await bob.screenshot({ path: join(SCREENSHOT_DIR, 'screenshot-room-desktop.png') });
    console.log(`    ${join(SCREENSHOT_DIR, 'screenshot-room.png')} (phone), screenshot-room-desktop.png (desktop)`);

    step('alice, owner of a new room, deletes bob’s message: it disappears from bob’s page');
    const modRoom = `moderated-${stamp}`;
    // The room list (hidden on a phone while a room is open).
    await alice.goto(CHAT_URL);
    await alice.getByRole('textbox', { name: 'Room name' }).fill(modRoom);
    await alice.getByRole('button', { name: 'Create room' }).click();
    await alice.getByRole('heading', { name: modRoom }).waitFor();
    await waitLive(alice);
    const modRoomId = alice.url().split('/').pop();
    // By its address: bob's room list may not have refreshed yet.
    await bob.goto(`${CHAT_URL}/rooms/${modRoomId}`);
    await bob.getByRole('heading', { name: modRoom }).waitFor();
    await waitLive(bob);
    // The owner's controls show once the room (with its owner) is loaded; bob has none.
    await alice.getByRole('combobox', { name: 'Slow mode' }).waitFor();
    const spam = `Cheap tickets, DM me (${stamp})`;
    await sendAndSee(bob, alice, spam);
    if (await messageItem(bob, spam).getByRole('button', { name: 'Message actions' }).count() !== 1) {
      throw new Error('bob has no "Message actions" on his own message');
    }
    // The delete is checked against the read model: wait until the projector has the message.
    const { token: aliceToken } = await sessionOf(alice);
    const { user: bobUser } = await sessionOf(bob);
    await until('bob’s message in the history', async () =>
      (await getJson(`/api/rooms/${modRoomId}/messages?limit=10`, aliceToken)).messages.some((m) => m.text === spam),
    );
    await messageItem(alice, spam).getByRole('button', { name: 'Message actions' }).click();
    const deleted = Date.now();
    await alice.getByRole('menuitem', { name: 'Delete', exact: true }).click();
    await messageItem(bob, spam).waitFor({ state: 'detached', timeout: 5000 });
    console.log(`    gone from bob’s page after ${Date.now() - deleted} ms`);
    await messageItem(alice, spam).waitFor({ state: 'detached' });

    step('alice bans bob for 10 minutes: his next post is refused and his page says until when');
    await sendAndSee(bob, alice, 'Why was that deleted?');
    await messageItem(alice, 'Why was that deleted?').getByRole('button', { name: 'Message actions' }).click();
    await alice.getByRole('menuitem', { name: 'Ban author for 10 minutes' }).click();
    await alice.getByText('bob is banned from this room for 10 minutes.').waitFor();
    await until('bob in the room’s bans', async () =>
      (await getJson(`/api/rooms/${modRoomId}/bans`, aliceToken)).bans.some((b) => b.user_id === bobUser.id),
    );
    expectedRefusal = /status of 403/;
    const refused = 'Let me back in';
    await bob.getByRole('textbox', { name: 'Message' }).fill(refused);
    await bob.getByRole('textbox', { name: 'Message' }).press('Enter');
    await messageItem(bob, refused).filter({ hasText: 'Not sent' }).waitFor();
    const banNotice = bob.getByRole('alert').filter({ hasText: /^You are banned from this room until .+\.$/ });
    await banNotice.waitFor();
    console.log(`    bob sees: "${await banNotice.textContent()}"`);
    expectedRefusal = null;
    // A message of alice's after it: once bob has it, his post would have come before it had it been taken.
    await sendAndSee(alice, bob, 'Take a break, bob.');
    if ((await messageItem(bob, refused).filter({ hasText: 'Not sent' }).count()) !== 1 || (await messageItem(alice, refused).count()) !== 0) {
      throw new Error('bob’s refused post was taken after all');
    }

    if (consoleErrors.length) throw new Error(`errors in the browser console:\n    ${consoleErrors.join('\n    ')}`);
  } catch (error) {
    for (const [who, page] of pages) {
      await page.screenshot({ path: join(ARTIFACTS, `failure-${who}.png`) }).catch(() => {});
    }
    if (consoleErrors.length) console.error(`browser console errors:\n  ${consoleErrors.join('\n  ')}`);
    console.error(`failure screenshots in ${ARTIFACTS}`);
    throw error;
  } finally {
    await browser.close();
  }
}

console.log(`web e2e against ${CHAT_URL}`);
main().then(
  () => console.log(`web e2e: all ${steps.length} steps passed`),
  (error) => {
    console.error(`web e2e FAILED at step "${steps.at(-1) ?? 'start'}": ${error?.message ?? error}`);
    process.exitCode = 1;
  },
);
