// Vite's `import.meta.glob` (only the form the demo uses).
interface ImportMeta {
  glob<T = unknown>(
    pattern: string,
    options: { readonly query?: string; readonly import?: string; readonly eager: true }
  ): Record<string, T>
}
