"""Operating the models: the champion / challenger / control impact report and the conversion
monitor. They read the logged lists and answers (the warehouse's feedback marts or the feedback
export) and the model registry, never the generator."""
