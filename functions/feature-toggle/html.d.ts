/** HTML files are imported as text (wrangler's default Text rule; esbuild's text loader locally). */
declare module '*.html' {
  const text: string;
  export default text;
}
