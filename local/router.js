// The local stack's front door: /functions/v1/<name>/... → that function, with the prefix stripped,
// so each function sees the same paths it serves in production. Bound to each function by name.
//
// The request body is read in full here, before anything answers: workerd resets a kept-alive
// connection when a response goes out while the request body is still unread (a 400 on a bad path
// parameter, a 401 before the JSON is parsed), and the client's next request on that socket then
// fails with ECONNRESET. Request bodies here are small JSON documents, so buffering costs nothing.
export default {
  async fetch(request, env) {
    const body = request.body ? await request.arrayBuffer() : undefined;
    const url = new URL(request.url);
    const m = /^\/functions\/v1\/([a-z-]+)(\/.*)?$/.exec(url.pathname);
    const target = m && env.FUNCTIONS.includes(m[1]) ? env[m[1]] : null;
    if (!target) {
      const message = `No function at ${url.pathname}. Functions: ${env.FUNCTIONS.map((f) => `/functions/v1/${f}`).join(', ')}`;
      return Response.json({ error: { message, type: 'not_found_error', code: 'function_not_found', param: null } }, { status: 404 });
    }
    url.pathname = m[2] || '/';
    return target.fetch(new Request(url, { method: request.method, headers: request.headers, body, redirect: 'manual' }));
  },
};
