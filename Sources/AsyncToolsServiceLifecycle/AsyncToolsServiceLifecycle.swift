// `Service` conformances for AsyncTools types.
