"""The likelihood engine: quadrature rules, integration over nodes, item densities, class chains; pure PyTensor and numpy, no family names."""
