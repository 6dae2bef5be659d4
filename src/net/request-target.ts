/**
 * A request's target as a URL, for the HTTP servers that read one (the console, the abuse endpoint, the
 * inspector): origin-form only (`/path?query`, RFC 9112 §3.2.1). Anything else — absolute or authority form, a
 * target URL parsing refuses (`//[`, a port over 65535) — is undefined, for the server to answer 400; never a
 * throw that would become a 500 and a fault line, before any authentication.
 */
export function requestUrl(target: string | undefined, base: string): URL | undefined {
  const t = target ?? '/';
  if (!t.startsWith('/') || t.startsWith('//')) return undefined;
  try {
    return new URL(t, base);
  } catch {
    return undefined;
  }
}
