declare module "parse-prometheus-text-format" {
  /** One metric family as parsed from the Prometheus text format. */
  interface MetricFamily {
    readonly name: string
    readonly help: string
    readonly type: "COUNTER" | "GAUGE" | "HISTOGRAM" | "SUMMARY" | "UNTYPED"
    readonly metrics: ReadonlyArray<{
      readonly value?: string
      readonly labels?: Readonly<Record<string, string>>
      readonly buckets?: Readonly<Record<string, string>>
      readonly count?: string
      readonly sum?: string
    }>
  }
  const parsePrometheusTextFormat: (text: string) => ReadonlyArray<MetricFamily>
  export default parsePrometheusTextFormat
}
