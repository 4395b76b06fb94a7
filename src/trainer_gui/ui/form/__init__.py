"""The job form and its sub-editors: channels, hyperparameters, metric definitions, the cost
estimate and the SageMaker export (`spec_form.SpecEditorDialog` puts them together)."""
