import { Agent, setGlobalDispatcher } from 'undici';

/**
 * Test-side HTTP hygiene: fetch keeps idle connections for only a moment, so a request never races
 * the local server closing a kept-alive socket (which shows as ECONNRESET / UND_ERR_SOCKET under
 * parallel load and has nothing to do with the code under test).
 */
setGlobalDispatcher(new Agent({ keepAliveTimeout: 50, keepAliveMaxTimeout: 50, connections: 64 }));
