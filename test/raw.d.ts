// Vite's `?raw` imports (the file's text), used by tests that check configuration files.
declare module "*?raw" {
  const text: string;
  export default text;
}
