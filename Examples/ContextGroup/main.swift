import AsyncTools

print("context-group example")
