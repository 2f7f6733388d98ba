import { describe, expect, it } from 'vitest';
import type { ChatMessage } from './openai-types';
import { filterMessageUrls, filterUrls, redactMessages, redactPii, type PiiKind } from './pii';

/** Each value, dropped into a sentence, must come out as exactly one placeholder of its kind. */
function expectRedacted(value: string, kind: PiiKind, placeholder: string): void {
  const r = redactPii(`Contact: ${value} today.`);
  expect(r.text).toBe(`Contact: ${placeholder} today.`);
  expect(r.counts).toEqual({ [kind]: 1 });
}

function expectUntouched(value: string): void {
  const r = redactPii(value);
  expect(r.text).toBe(value);
  expect(r.counts).toEqual({});
}

/** Deep-freezes so that any mutation of the input throws (test files are ES modules: strict mode). */
function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

describe('redactPii: emails', () => {
  it.each([
    'john.doe@example.com',
    'jane+newsletter@mail.example.co.uk',
    'first_last-99@sub.domain.io',
    'UPPER.CASE@EXAMPLE.ORG',
    'x@y.travel',
    'o.reilly%dept@corp-mail.example.com',
    'a1@b2.de',
  ])('redacts %s', (email) => expectRedacted(email, 'email', '[EMAIL]'));

  it('keeps the surrounding punctuation', () => {
    expect(redactPii('<john@example.com>, (jane@example.org). mailto:bob@example.net').text).toBe('<[EMAIL]>, ([EMAIL]). mailto:[EMAIL]');
  });

  it.each(['user@localhost', '@mention', 'foo @ bar.com', 'user@host.1', 'a.@b.com'])('leaves %s alone', expectUntouched);
});

describe('redactPii: phone numbers', () => {
  it.each([
    // international and E.164
    '+1 415 555 2671',
    '+14155552671',
    '+1-555-123-4567',
    '+1 (555) 123-4567',
    '+44 20 7946 0958',
    '+44 (0)20 7946 0958',
    '+49 30 12345678',
    '+33 6 12 34 56 78',
    '+31 6 12345678',
    '+41 44 668 18 00',
    '+86 138 0013 8000',
    '+91-98765-43210',
    '0044 20 7946 0958',
    // US / NANP
    '(555) 123-4567',
    '(555)123-4567',
    '555-123-4567',
    '555.123.4567',
    '555 123 4567',
    '1-800-555-0199',
    '1 (555) 123-4567',
    // European national formats
    '020 7946 0958',
    '07700 900123',
    '030 12345678',
    '0171 1234567',
    '030/1234567',
    '089 / 1234567',
    '(030) 1234567',
    '06 12 34 56 78',
    '06.12.34.56.78',
    '02 1234 5678',
  ])('redacts %s', (phone) => expectRedacted(phone, 'phone', '[PHONE]'));

  it('finds a phone number next to other numbers', () => {
    expect(redactPii('Room 12 555-123-4567').text).toBe('Room 12 [PHONE]');
    expect(redactPii('at 12:30 call 555-123-4567, ext. 89').text).toBe('at 12:30 call [PHONE], ext. 89');
    expect(redactPii('Tel:+44 20 7946 0958').text).toBe('Tel:[PHONE]');
  });
});

describe('redactPii: payment cards', () => {
  it.each([
    '4111 1111 1111 1111',
    '4111-1111-1111-1111',
    '4111111111111111',
    '4242 4242 4242 4242',
    '4012888888881881',
    '5555 5555 5555 4444',
    '5105-1051-0510-5100',
    '2223 0031 2200 3222', // Mastercard 2-series
    '3782 822463 10005', // Amex 4-6-5
    '371449635398431',
    '6011 1111 1111 1117', // Discover
    '3530111333300000', // JCB
    '3056 930902 5904', // Diners 4-6-4
    '3056 9309 0259 04',
    '4222222222222', // 13 digits
    '4000 0000 0000 0000 006', // 19 digits
    '6221260000000000001',
  ])('redacts %s', (card) => expectRedacted(card, 'card', '[CARD]'));

  it('is never half-eaten as a phone number, and takes the valid window of a longer run', () => {
    expect(redactPii('card 4111 1111 1111 1111 exp 12/27').text).toBe('card [CARD] exp 12/27');
    expect(redactPii('5678 4111 1111 1111 1111').text).toBe('5678 [CARD]');
    expect(redactPii('4111 1111 1111 1111 2024').text).toBe('[CARD] 2024');
  });
});

describe('redactPii: IBANs', () => {
  it.each([
    'DE89 3704 0044 0532 0130 00',
    'DE89370400440532013000',
    'GB82 WEST 1234 5698 7654 32',
    'GB82WEST12345698765432',
    'FR14 2004 1010 0505 0001 3M02 606',
    'NL91 ABNA 0417 1643 00',
    'BE68 5390 0754 7034',
    'BE68539007547034',
    'CH93 0076 2011 6238 5295 7',
    'ES91 2100 0418 4502 0005 1332',
    'IT60 X054 2811 1010 0000 0123 456',
    'NO93 8601 1117 947', // shortest (15)
    'MT84 MALT 0110 0001 2345 MTLC AST0 01S', // 31
  ])('redacts %s', (iban) => expectRedacted(iban, 'iban', '[IBAN]'));

  it('does not swallow a following upper-case word, and finds an IBAN after an IBAN-like word', () => {
    expect(redactPii('BE68 5390 0754 7034 CODE').text).toBe('[IBAN] CODE');
    expect(redactPii('REF AB12 DE89 3704 0044 0532 0130 00').text).toBe('REF AB12 [IBAN]');
    expect(redactPii('IBAN:DE89370400440532013000.').text).toBe('IBAN:[IBAN].');
  });
});

describe('redactPii: US SSNs', () => {
  it.each(['123-45-6789', '078-05-1120', '219-09-9999', '665-12-3456', '899-99-9998'])('redacts %s', (ssn) =>
    expectRedacted(ssn, 'ssn', '[SSN]'),
  );
});

describe('redactPii: near misses stay as they are', () => {
  it.each([
    // cards failing Luhn
    '4111 1111 1111 1112',
    '4111111111111112',
    '1234567890123456',
    '1234 5678 9012 3456',
    '0111 1111 1111 1111',
    // IBANs with a wrong check digit (the spaced one also contains a phone-like "0044 0532 0130 00")
    'DE88 3704 0044 0532 0130 00',
    'DE89370400440532013001',
    'GB83 WEST 1234 5698 7654 32',
    // dates and times
    '2024-01-15',
    '15/01/2024',
    '01/15/2024',
    '15.01.2024',
    '2024-01-15T10:30:00Z',
    '2024-01-15 10:30',
    '01.02.2024 12:30',
    'Jan 15, 2024',
    '12:30:45',
    '10:30 AM',
    '23:59:59.999',
    // versions
    'v1.2.3',
    '10.0.19045',
    '10.0.19045.3803',
    'node 20.11.1',
    '1.2.3-beta.4',
    // prices and amounts
    '$1,234.56',
    '$1,234,567.89',
    '€ 1.234.567,89',
    'USD 12,345,678',
    // ISBNs (9780306406157 is a valid ISBN-13 that would pass as 13 digits)
    'ISBN 978-3-16-148410-0',
    'ISBN-13: 978-0-596-52068-7',
    'ISBN 0-306-40615-2',
    '9780306406157',
    // SSNs that are never issued
    '000-12-3456',
    '666-12-3456',
    '900-12-3456',
    '123-00-4567',
    '123-45-0000',
    '123-45-6789-1',
    // UUIDs and hashes
    '123e4567-e89b-12d3-a456-426614174000',
    '550e8400-e29b-41d4-a716-446655440000',
    '12345678-1234-5678-1234-567812345678',
    'da39a3ee5e6b4b0d3255bfef95601890afd80709',
    'd41d8cd98f00b204e9800998ecf8427e',
    'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    '0x1234567890abcdef',
    'commit 3f2a9c1',
    // order ids and other identifiers
    'ORD-2024-000123',
    'order #ORD2024000123',
    'INV5551234567',
    'SKU-555-123-4567',
    'timestamp 1705312345',
    // short numbers and numeric lists
    '42',
    '12345',
    '555-1234',
    '1234 5678',
    '12345678',
    '1999 2000 2001',
    '192.168.100.200',
    '3.14159 2.71828',
  ])('%s', expectUntouched);
});

describe('redactPii: whole texts', () => {
  const text =
    'Hi, I am Jane (jane.doe+work@mail.example.com, +44 20 7946 0958). My card is 4111 1111 1111 1111 and my ' +
    'IBAN is DE89 3704 0044 0532 0130 00; SSN 123-45-6789. Order ORD-2024-000123 from 2024-01-15, total $1,234.56, ' +
    'app v1.2.3. Or call (555) 123-4567.';

  it('redacts every kind and counts them', () => {
    const r = redactPii(text);
    expect(r.text).toBe(
      'Hi, I am Jane ([EMAIL], [PHONE]). My card is [CARD] and my IBAN is [IBAN]; SSN [SSN]. ' +
        'Order ORD-2024-000123 from 2024-01-15, total $1,234.56, app v1.2.3. Or call [PHONE].',
    );
    expect(r.counts).toEqual({ email: 1, phone: 2, card: 1, iban: 1, ssn: 1 });
  });

  it('is idempotent and leaves clean text (and the empty string) unchanged', () => {
    const once = redactPii(text).text;
    expect(redactPii(once)).toEqual({ text: once, counts: {} });
    expectUntouched('');
    expectUntouched('Nothing to see here: 3 apples, 12 pears.');
  });

  it('runs in linear time on adversarial input', () => {
    const n = 100_000;
    const inputs = [
      'a'.repeat(n),
      'a.'.repeat(n / 2),
      'x@' + 'a.'.repeat(n / 2) + '1',
      '1'.repeat(n),
      '1 '.repeat(n / 2),
      '12-'.repeat(n / 3),
      '+1'.repeat(n / 2),
      '(1) '.repeat(n / 4),
      'AB12 '.repeat(n / 5),
      '1.'.repeat(n / 2),
      text.repeat(n / text.length),
    ];
    for (const input of inputs) {
      const t = performance.now();
      redactPii(input);
      // Generous: a quadratic pattern would take minutes here; linear is tens of milliseconds.
      expect(performance.now() - t).toBeLessThan(2_000);
    }
  });
});

describe('redactMessages', () => {
  const messages: ChatMessage[] = deepFreeze([
    { role: 'system', content: 'Never reveal john@example.com.' },
    {
      role: 'user',
      content: [
        { type: 'text', text: 'Call me at 555-123-4567 or +1 415 555 2671.' },
        { type: 'image_url', image_url: { url: 'https://img.example.com/555-123-4567/john@example.com.png', detail: 'low' } },
        { type: 'text', text: 'Card 4111 1111 1111 1111' },
      ],
    },
    {
      role: 'assistant',
      content: null,
      tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'lookup', arguments: '{"email":"john@example.com"}' } }],
    },
    { role: 'tool', tool_call_id: 'call_1', content: 'Found: SSN 123-45-6789' },
  ]);

  it('redacts string content and text parts, sums the counts', () => {
    const r = redactMessages(messages);
    expect(r.messages).toEqual([
      { role: 'system', content: 'Never reveal [EMAIL].' },
      {
        role: 'user',
        content: [
          { type: 'text', text: 'Call me at [PHONE] or [PHONE].' },
          { type: 'image_url', image_url: { url: 'https://img.example.com/555-123-4567/john@example.com.png', detail: 'low' } },
          { type: 'text', text: 'Card [CARD]' },
        ],
      },
      {
        role: 'assistant',
        content: null,
        tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'lookup', arguments: '{"email":"john@example.com"}' } }],
      },
      { role: 'tool', tool_call_id: 'call_1', content: 'Found: SSN [SSN]' },
    ]);
    expect(r.counts).toEqual({ email: 1, phone: 2, card: 1, ssn: 1 });
  });

  it('never mutates its input (frozen input; new arrays and messages)', () => {
    const before = structuredClone(messages);
    const r = redactMessages(messages);
    expect(messages).toEqual(before);
    expect(r.messages).not.toBe(messages);
    r.messages.forEach((m, i) => expect(m).not.toBe(messages[i]));
    expect(r.messages[1]!.content).not.toBe(messages[1]!.content);
  });

  it('handles an empty list', () => {
    expect(redactMessages([])).toEqual({ messages: [], counts: {} });
  });
});

describe('filterUrls', () => {
  const allow = ['example.com', 'docs.org'];

  it.each([
    'https://example.com',
    'https://example.com/a/b?c=1#d',
    'http://api.example.com:8443/v1',
    'https://deep.sub.example.com/x',
    'HTTPS://Sub.Example.COM./p',
    'https://user:pw@example.com/ok',
    'https://docs.org/guide',
  ])('keeps %s (allowed host or subdomain)', (url) => {
    expect(filterUrls(`see ${url} now`, allow)).toEqual({ text: `see ${url} now`, removed: 0 });
  });

  it.each([
    'https://evil.io/x',
    'http://example.org',
    'https://example.com.evil.io/x', // lookalike: allowed name as a prefix
    'https://evilexample.com/', // lookalike: allowed name as a suffix without the dot
    'https://example.com@evil.io/', // userinfo trick: the host is evil.io
    'https://evil.io\\@example.com', // browsers read "\" as "/": the host is evil.io
    'https://[::1]:8080/',
    'https://192.168.0.1/admin',
  ])('removes %s', (url) => {
    expect(filterUrls(`see ${url} now`, allow)).toEqual({ text: 'see [URL REMOVED] now', removed: 1 });
  });

  it('keeps sentence punctuation and unbalanced brackets outside the URL', () => {
    expect(filterUrls('Go to https://evil.io/a.', allow).text).toBe('Go to [URL REMOVED].');
    expect(filterUrls('(https://evil.io/a)', allow).text).toBe('([URL REMOVED])');
    expect(filterUrls('"https://evil.io/x", https://example.com/wiki/Foo_(bar).', allow).text).toBe('"[URL REMOVED]", https://example.com/wiki/Foo_(bar).');
  });

  it('counts every removed URL and leaves bare domains alone', () => {
    const r = filterUrls('a https://a.io b http://b.io c https://example.com d evil.io', allow);
    expect(r).toEqual({ text: 'a [URL REMOVED] b [URL REMOVED] c https://example.com d evil.io', removed: 2 });
  });

  it('accepts allowlist entries written as "*.example.com" or with capitals', () => {
    expect(filterUrls('https://a.example.com', ['*.Example.com']).removed).toBe(0);
    expect(filterUrls('https://example.com', ['.example.com']).removed).toBe(0);
  });

  it('allows everything when the allowlist is empty', () => {
    const text = 'https://evil.io and https://example.com.evil.io';
    expect(filterUrls(text, [])).toEqual({ text, removed: 0 });
  });
});

describe('filterMessageUrls', () => {
  const messages: ChatMessage[] = deepFreeze([
    { role: 'user', content: 'Read https://docs.example.com/a and https://evil.io/b' },
    {
      role: 'user',
      content: [
        { type: 'text', text: 'also http://tracker.net/p' },
        { type: 'image_url', image_url: { url: 'https://evil.io/cat.png' } },
      ],
    },
    { role: 'assistant', content: null },
  ]);

  it('filters text content and text parts, leaves image parts, never mutates', () => {
    const before = structuredClone(messages);
    const r = filterMessageUrls(messages, ['example.com']);
    expect(r.removed).toBe(2);
    expect(r.messages).toEqual([
      { role: 'user', content: 'Read https://docs.example.com/a and [URL REMOVED]' },
      {
        role: 'user',
        content: [
          { type: 'text', text: 'also [URL REMOVED]' },
          { type: 'image_url', image_url: { url: 'https://evil.io/cat.png' } },
        ],
      },
      { role: 'assistant', content: null },
    ]);
    expect(messages).toEqual(before);
  });

  it('is a no-op with an empty allowlist', () => {
    const r = filterMessageUrls(messages, []);
    expect(r).toEqual({ messages: structuredClone(messages), removed: 0 });
    expect(r.messages).not.toBe(messages);
  });
});
