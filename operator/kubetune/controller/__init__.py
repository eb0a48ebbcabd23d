"""The Kopf operator: TuningExperiments reconciled into trial Jobs."""
