import { existsSync } from 'node:fs';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { evaluateFlag } from '../shared/flags';
import { admin, createDeployment, eventually, fn, proxyChat, stack } from './helpers';

/**
 * The admin dashboard in headless Chromium (Debian's `chromium`, driven by playwright-core): a
 * person signs in with the admin key and changes flags, presets, the kill switch, reverts; each
 * change is checked through the API and on the proxy itself. `.ci/run` installs chromium and sets
 * REQUIRE_BROWSER=1, so there a missing browser fails; elsewhere the file is skipped, saying why.
 */
const executablePath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const haveBrowser = existsSync(executablePath);
if (!haveBrowser && process.env.REQUIRE_BROWSER === '1') throw new Error(`REQUIRE_BROWSER=1 but there is no browser at ${executablePath} (apt-get install -y chromium)`);
if (!haveBrowser) console.warn(`dashboard tests skipped: no browser at ${executablePath} (apt-get install -y chromium, or set CHROMIUM_PATH)`);

const dashboardUrl = fn('feature-toggle', '/dashboard');

async function chat(key: string) {
  const r = await proxyChat(key, { model: 'auto', messages: [{ role: 'user', content: 'hi!' }] });
  return { status: r.status, routeReason: r.headers.get('x-inference-edge-route-reason') };
}

describe.skipIf(!haveBrowser)('admin dashboard (headless Chromium)', () => {
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let problems: string[] = [];

  beforeAll(async () => {
    browser = await chromium.launch({
      executablePath,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  }, 30_000);
  // Each test is a new person: a fresh browser context (no session storage), its own problem list.
  beforeEach(async () => {
    context = await browser.newContext();
    page = await context.newPage();
    problems = [];
    // Any script error, CSP violation or failed load on the page fails the test that caused it.
    page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(`console: ${m.text()}`);
    });
  });
  afterEach(async () => {
    await context?.close();
  });
  afterAll(async () => {
    await admin('POST', '/kill-switch', { enabled: true }); // whatever happened, inference is back on
    await browser?.close();
  });

  async function signIn() {
    await page.goto(dashboardUrl);
    await page.getByLabel('Admin key').fill(stack.adminKey);
    await page.getByLabel('Your email, for the audit log').fill('pm@example.com');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('#deployments').waitFor();
  }

  async function open(name: string) {
    await page.locator('#deployments button', { hasText: name }).click();
    await eventually(async () => expect(await page.locator('#d-name').textContent()).toBe(name));
  }

  const flagRow = (flag: string) => page.locator(`#flags tr[data-flag="${flag}"]`);

  it('is served with a strict CSP, and refuses a wrong key with a clear message', async () => {
    const res = await fetch(dashboardUrl);
    expect(res.status).toBe(200);
    const csp = res.headers.get('content-security-policy')!;
    const nonce = /script-src 'nonce-([^']+)'/.exec(csp)![1];
    expect(csp).toContain("default-src 'none'");
    expect(await res.text()).toContain(`<script nonce="${nonce}">`);
    expect((await fetch(dashboardUrl)).headers.get('content-security-policy')).not.toContain(nonce!); // a fresh nonce each time

    await page.goto(dashboardUrl);
    await page.getByLabel('Admin key').fill('wrong-key-wrong-key');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await eventually(async () => expect(await page.locator('#login-error').textContent()).toBe('The admin key is not valid.'));
    expect(await page.locator('#app').isHidden()).toBe(true);
    expect(problems.filter((p) => !p.includes('401'))).toEqual([]); // the browser logs the refused fetch itself
  });

  it('turns a flag off, and the very next proxied call is routed without it; the audit log names the person', async () => {
    const name = `dash ${Math.random().toString(36).slice(2, 8)}`;
    const { deployment, keys } = await createDeployment({ type: 'internal', name });
    expect((await chat(keys.secret)).routeReason).toMatch(/^smart:/);

    await signIn();
    await open(name);
    await flagRow('smartRouting').getByRole('checkbox').uncheck();
    await flagRow('smartRouting').getByRole('button', { name: 'Save' }).click();
    await eventually(async () => expect(await page.locator('#status').textContent()).toBe('Saved smartRouting.'));

    expect((await admin('GET', `/deployments/${deployment.id}/features`)).body.features.smartRouting).toBe(false);
    expect((await chat(keys.secret)).routeReason).toBe('auto:default');
    const first = page.locator('#audit tbody tr').first();
    expect(await first.getAttribute('data-action')).toBe('feature.updated');
    expect(await first.locator('td').nth(2).textContent()).toBe('admin:pm@example.com');
    expect(await first.locator('td').nth(3).textContent()).toBe('features.smartRouting: true → false');

    // One-click revert from the audit log brings it back, also on the proxy.
    await first.getByRole('button', { name: 'Revert' }).click();
    await eventually(async () => expect(await page.locator('#audit tbody tr').first().getAttribute('data-action')).toBe('deployment.reverted'));
    expect((await admin('GET', `/deployments/${deployment.id}/features`)).body.features.smartRouting).toBe(true);
    expect((await chat(keys.secret)).routeReason).toMatch(/^smart:/);
    expect(problems).toEqual([]);
  });

  it('adds a flag, rolls it out to 50 %, and previews callers with the same evaluation as the proxy', async () => {
    const name = `dash ${Math.random().toString(36).slice(2, 8)}`;
    const { deployment } = await createDeployment({ type: 'public', name });
    await signIn();
    await open(name);
    await page.getByLabel('New flag').fill('newChat');
    await page.getByRole('button', { name: 'Add (off)' }).click();
    await flagRow('newChat').waitFor();
    await flagRow('newChat').getByRole('checkbox').check();
    await flagRow('newChat').getByRole('spinbutton').fill('50');
    await flagRow('newChat').getByRole('button', { name: 'Save' }).click();
    await eventually(async () => expect(await page.locator('#status').textContent()).toBe('Saved newChat.'));
    const stored = (await admin('GET', `/deployments/${deployment.id}/features`)).body.features.newChat;
    expect(stored).toEqual({ enabled: true, rolloutPercentage: 50 });

    // Preview: what the page shows for a user is what shared/flags.ts computes for that user.
    let on = 0;
    for (const userId of ['u1', 'u2', 'u3', 'u4', 'u5', 'u6']) {
      await page.getByLabel('userId').fill(userId);
      await page.getByRole('button', { name: 'Evaluate' }).click();
      const expected = evaluateFlag('newChat', stored, { userId }).enabled;
      await eventually(async () => {
        expect(await page.locator('#preview-result').isVisible()).toBe(true);
        expect(await page.locator('#preview-result tr[data-flag="newChat"]').getAttribute('data-enabled')).toBe(String(expected));
      });
      // Re-render for the next user starts from a hidden table.
      await page.locator('#preview-result').evaluate((t) => { (t as HTMLElement).hidden = true; });
      on += expected ? 1 : 0;
    }
    expect(on).toBeGreaterThan(0);
    expect(on).toBeLessThan(6);
    expect(problems).toEqual([]);
  });

  it('rotates the keys (shown once; the old secret key stops working on the proxy) and revokes one', async () => {
    const name = `dash ${Math.random().toString(36).slice(2, 8)}`;
    const { keys } = await createDeployment({ type: 'internal', name });
    expect((await chat(keys.secret)).status).toBe(200);
    await signIn();
    await open(name);
    expect(await page.locator('#keys tbody tr[data-state="active"]').count()).toBe(2);

    page.once('dialog', (d) => void d.accept());
    await page.getByRole('button', { name: 'Rotate keys' }).click();
    await eventually(async () => expect(await page.locator('#status').textContent()).toBe('Rotated the keys.'));
    const newSecret = (await page.locator('#new-sk').textContent())!;
    expect(newSecret).toMatch(/^sk_test_/);
    expect(await page.locator('#keys tbody tr[data-state="revoked"]').count()).toBe(2);
    expect(await page.locator('#keys tbody tr[data-state="active"]').count()).toBe(2);
    await eventually(async () => expect((await chat(keys.secret)).status).toBe(401));
    expect((await chat(newSecret)).status).toBe(200);

    // Revoke the new secret key from its row.
    page.once('dialog', (d) => void d.accept());
    await page.locator('#keys tbody tr[data-state="active"][data-kind="secret"]').getByRole('button', { name: 'Revoke' }).click();
    await eventually(async () => expect(await page.locator('#keys tbody tr[data-state="active"][data-kind="secret"]').count()).toBe(0));
    await eventually(async () => expect((await chat(newSecret)).status).toBe(401));
    expect(problems).toEqual([]);
  });

  it('applies a preset and throws the global kill switch (after a confirmation), then turns it back on', async () => {
    const name = `dash ${Math.random().toString(36).slice(2, 8)}`;
    const { deployment, keys } = await createDeployment({ type: 'internal', name });
    await signIn();
    await open(name);
    await page.getByRole('button', { name: 'healthcare' }).click();
    await eventually(async () => expect(await page.locator('#status').textContent()).toBe('Applied the healthcare preset.'));
    expect((await admin('GET', `/deployments/${deployment.id}/features`)).body.features).toMatchObject({ piiRedaction: true, medicalImagingEnabled: true });

    // Dismissing the confirmation changes nothing (given time to, were it to send anything).
    page.once('dialog', (d) => void d.dismiss());
    await page.getByRole('button', { name: 'Turn inference off everywhere' }).click();
    await new Promise((r) => setTimeout(r, 300));
    expect((await admin('GET', '/kill-switch')).body.enabled).toBe(true);
    expect(await page.locator('#ks-state').textContent()).toBe('on');
    expect((await chat(keys.secret)).status).toBe(200);

    page.once('dialog', (d) => void d.accept());
    await page.getByRole('button', { name: 'Turn inference off everywhere' }).click();
    await eventually(async () => expect(await page.locator('#ks-state').textContent()).toBe('off'));
    expect((await chat(keys.secret)).status).toBe(503);
    await page.getByRole('button', { name: 'Turn inference back on' }).click();
    await eventually(async () => expect(await page.locator('#ks-state').textContent()).toBe('on'));
    expect((await chat(keys.secret)).status).toBe(200);
    expect(problems).toEqual([]);
  });
});
