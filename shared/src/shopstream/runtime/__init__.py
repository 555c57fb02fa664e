"""The service runtime every shopstream service stands on."""
