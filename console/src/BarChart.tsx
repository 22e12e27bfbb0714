/** A bar chart (Chart.js, bundled): one category axis, one or more stacked series. */
import { BarController, BarElement, CategoryScale, Chart, Legend, LinearScale, Tooltip } from "chart.js";
import { useEffect, useRef } from "react";

Chart.register(BarController, BarElement, CategoryScale, LinearScale, Legend, Tooltip);

export interface Series {
  label: string;
  values: number[];
  colour: string;
}

export function BarChart(props: { title: string; labels: string[]; series: Series[]; horizontal?: boolean }) {
  const canvas = useRef<HTMLCanvasElement>(null);
  useEffect(() => {
    if (!canvas.current) return;
    const chart = new Chart(canvas.current, {
      type: "bar",
      data: { labels: props.labels, datasets: props.series.map((s) => ({ label: s.label, data: s.values, backgroundColor: s.colour, borderRadius: 2 })) },
      options: {
        indexAxis: props.horizontal ? "y" : "x",
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } },
        plugins: { legend: { position: "bottom" } },
      },
    });
    return () => chart.destroy();
  }, [props.labels, props.series, props.horizontal]);
  // The numbers are also in the table beside each chart (a canvas says nothing to a screen reader).
  return (
    <figure className="chart">
      <figcaption>{props.title}</figcaption>
      <div className="chart-box">
        <canvas ref={canvas} role="img" aria-label={props.title} />
      </div>
    </figure>
  );
}
