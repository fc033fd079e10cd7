"Local docs tooling that needs no Quarto: HTML pages from the notebooks, a headless-Chromium check, README from index."
